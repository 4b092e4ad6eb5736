"""Host-side data: datasets, vocabularies, filter indices. Never imports jax.numpy."""
