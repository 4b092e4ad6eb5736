"""Pure, jit-safe functions with shape contracts: samplers, ranking, index lookups."""
