"""kgjax/text."""
