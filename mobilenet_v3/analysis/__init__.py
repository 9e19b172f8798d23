"""Looking at networks and files: MAdds/params (cost, table) and .tflite contents (tflite_inspect).
"""
