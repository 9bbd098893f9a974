"""Pydantic request/response models: XCreate / XRead / XPage{items,total}. Separate from the tables."""
