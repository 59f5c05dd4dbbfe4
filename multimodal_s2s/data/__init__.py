"""Datasets (real formats and embedded generators), collation and LightningDataModules."""
