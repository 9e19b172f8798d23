"""App runtimes: MediaPipe Tasks run on our files in an environment of its own."""
