"""Batch scoring: read inputs as Arrow batches, score them with one verified model version,
write the predictions into a database, Redis or Parquet exactly once, on demand, on a
schedule or when files arrive."""
