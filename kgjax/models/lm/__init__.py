"""kgjax/models/lm."""
