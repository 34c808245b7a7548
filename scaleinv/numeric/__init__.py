"""The numeric layer: compiled batched kernels, update rules, the driver and export."""
