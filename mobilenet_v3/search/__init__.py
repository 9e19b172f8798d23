"""The paper's network search (section 4): NetAdapt (4.2) on the latency oracles.

  arch.py      channel spaces of an ArchSpec and the two proposal kinds as edits of them
  inherit.py   a proposal's weights from its parent (filters of largest L2 norm)
  oracles.py   latency behind one interface: host LiteRT, phone (android_bench), lookup
               table, MAdds; cached by architecture
  finetune.py  one proposal's short fine-tune: a normal train.py run folder
  workers.py   the fine-tunes of a step as Ray tasks (local or a cluster)
  netadapt.py  the loop, the selection rule, history.json and resume
  plot.py      latency vs accuracy of every proposal and the chosen path
"""
