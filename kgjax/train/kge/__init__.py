"""kgjax/train/kge."""
