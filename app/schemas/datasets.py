"""Target datasets as the API shows them: the upload form, the dataset with its statistics, a page."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from app.enums import Modality, TaskType
from app.schemas.common import Page, ReadModel


class DatasetCreate(BaseModel):
    """The form fields of ``POST /v1/datasets`` (the file travels beside them as ``file``)."""

    name: str | None = Field(default=None, max_length=300, description="Defaults to the uploaded file's name.")
    task_type: TaskType | None = Field(
        default=None,
        description="Inferred when omitted: text labels → classification, numeric → regression, several "
        "numeric label columns → multi-target regression. multilabel must be asked for (or given as lists).",
    )
    label_column: str | None = Field(default=None, description="The label column (CSV, JSONL, manifest, parquet).")
    label_columns: list[str] = Field(
        default_factory=list, description="Several label columns: repeat the field or separate with commas."
    )
    text_column: str | None = Field(default=None, description="Text datasets: the text column (default 'text').")
    on_bad_file: Literal["reject", "skip"] = Field(
        default="reject", description="An image that does not decode: refuse the upload, or skip it and count it."
    )

    @model_validator(mode="after")
    def _one_way_to_name_labels(self) -> DatasetCreate:
        if self.label_column and self.all_label_columns()[1:]:
            raise ValueError("give label_column or label_columns, not both")
        return self

    def all_label_columns(self) -> list[str]:
        cols = [c.strip() for entry in self.label_columns for c in entry.split(",") if c.strip()]
        if self.label_column and self.label_column.strip():
            cols.insert(0, self.label_column.strip())
        return cols


class Summary(BaseModel):
    min: float
    max: float
    mean: float
    median: float
    p95: float


class ClassCount(BaseModel):
    name: str
    count: int = Field(description="Samples of the class (multilabel: samples carrying the label).")


class TargetSummary(BaseModel):
    name: str
    mean: float
    std: float
    min: float
    max: float


class SkippedFile(BaseModel):
    name: str
    reason: str


class SkippedFiles(BaseModel):
    count: int = 0
    items: list[SkippedFile] = Field(default_factory=list, description="The first 100.")


class IgnoredFiles(BaseModel):
    count: int = 0
    items: list[str] = Field(default_factory=list, description="The first 100.")


class ImageStats(BaseModel):
    width: Summary
    height: Summary
    source_formats: dict[str, int]
    reencoded: int = Field(description="Images converted to RGB PNG at ingest (not RGB JPEG/PNG already).")
    unlisted_images: int = Field(description="Images in the archive that the manifest does not list.")
    manifest: str | None = None


class TextStats(BaseModel):
    chars: Summary
    text_column: str
    label_columns: list[str]


class FeatureStats(BaseModel):
    dim: int
    label_key: str


class SplitSizes(BaseModel):
    train: int
    val: int


class DatasetStats(BaseModel):
    format: str | None = None
    modality: Modality | None = None
    task_type: TaskType | None = None
    num_samples: int | None = None
    num_classes: int | None = None
    target_names: list[str] | None = Field(default=None, description="Regression targets or multilabel labels.")
    digest: str | None = None
    split: SplitSizes | None = None
    classes: list[ClassCount] | None = None
    targets: list[TargetSummary] | None = None
    skipped_files: SkippedFiles = Field(default_factory=SkippedFiles)
    ignored_files: IgnoredFiles = Field(default_factory=IgnoredFiles)
    images: ImageStats | None = None
    text: TextStats | None = None
    features: FeatureStats | None = None


class SplitRecipe(BaseModel):
    seed: int | None = None
    val_fraction: float | None = None
    train_fraction: float | None = None
    stratify: str | None = None
    train: int | None = None
    val: int | None = None


class DatasetRead(ReadModel):
    id: uuid.UUID
    name: str
    modality: Modality
    task_type: TaskType
    format: str = Field(description="Container and layout, e.g. 'zip/class-folders', 'tar.gz/manifest', 'csv'.")
    digest: str = Field(description="sha256 of the canonical content: same samples and labels → same digest.")
    num_samples: int
    num_classes: int | None = None
    size_bytes: int
    stats: DatasetStats
    split: SplitRecipe
    created_at: datetime
    notes: list[str] = Field(default_factory=list, description="What the service did differently from what was "
                             "asked (e.g. a re-upload of known content keeps the existing dataset and its name).")


class DatasetPage(Page[DatasetRead]):
    pass
