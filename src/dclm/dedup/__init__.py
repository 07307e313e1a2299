"""Deduplication: BFF Bloom-filter n-gram dedup (`bff`) and exact URL/text dedup (`exact`)."""
