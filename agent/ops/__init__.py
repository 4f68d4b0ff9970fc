"""Operations: batches, the worker queue, the review desk and pilot metrics."""
