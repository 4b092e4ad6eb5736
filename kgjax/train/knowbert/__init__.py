"""KnowBERT-W training (Peters et al., EMNLP 2019): MiniLM's LM1, the KAR layer over WordNet
candidate spans, LM2 and a masked-token head, trained on WordNet's gloss examples with the
entity linker's loss and masked language modelling (`trainer.py`; config `config.py`, entity
table `entities.py`, host-side sentences and batches `sentences.py`, the jitted step `step.py`).
"""
