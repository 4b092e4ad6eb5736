"""JAKET's trainers: the knowledge module pre-trained on the graph alone (`trainer.py`)."""
