"""The paper's network search (section 4): platform-aware NAS (4.1) and NetAdapt (4.2) on
the same latency oracles and ArchSpec.

  arch.py      channel spaces of an ArchSpec and the two proposal kinds as edits of them
  inherit.py   a proposal's weights from its parent (filters of largest L2 norm)
  oracles.py   latency behind one interface: host LiteRT, phone (android_bench), lookup
               table, MAdds; cached by architecture
  finetune.py  one proposal's short fine-tune (or a NAS trial): a normal train.py run folder
  workers.py   the fine-tunes of a step as Ray tasks (local or a cluster)
  netadapt.py  the loop, the selection rule and resume
  records.py   history.json, resumed only under the same settings
  space.py     NAS: MnasNet's factorized space around a seed, as data
  controller.py  NAS: the RNN controller and its REINFORCE update
  nas.py       NAS: the reward, the rounds and resume
  plot.py      latency vs accuracy: NetAdapt's proposals and path, NAS's samples
"""
