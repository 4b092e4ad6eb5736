"""Downstream fine-tuning of MiniLM and KnowBERT-W (Peters et al., EMNLP 2019) on WiC and
SemEval-2010 Task 8 (`trainer.py`; config `config.py`, host-side examples and batches
`inputs.py`, the classifier and jitted step `step.py`).
"""
