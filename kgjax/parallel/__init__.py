"""kgjax/parallel."""
