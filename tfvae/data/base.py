"""The types every source shares: `DataError` for problems with user-supplied data, `Dataset`, `DataFacts`."""

import dataclasses

import numpy as np

from tfvae.errors import TfvaeError


class DataError(TfvaeError):
    """A user-facing problem with the data; str(e) is one clear line naming the problem and the fix."""


@dataclasses.dataclass(frozen=True)
class DataFacts:
    """What loading a dataset found: what a model of it must fit, and where it came from.

    Attributes:
      image_shape: (height, width, channels) of one image.
      num_classes: number of classes; 0 when the data is unlabelled.
      class_names: the classes' names (empty when the data has none).
      num_examples: training images.
      data_source: where the images were read from (a path, a package, a download).
    """

    image_shape: tuple = ()
    num_classes: int = 0
    class_names: tuple = ()
    num_examples: int = 0
    data_source: str = ""

    FIELDS = ("image_shape", "num_classes", "class_names", "num_examples", "data_source")

    def __post_init__(self):
        object.__setattr__(self, "image_shape", tuple(int(d) for d in self.image_shape))
        object.__setattr__(self, "class_names", tuple(self.class_names or ()))


@dataclasses.dataclass
class Dataset:
    """Images as uint8 arrays of shape (N, H, W, C), with int64 class ids or None for unlabeled data.

    For folders, ``x_train`` is an `ImageFiles` (see there) and ``skipped`` lists the files that could not be
    decoded, relative to the folder, with the reason for each in ``skip_reasons``.
    """

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    class_names: list[str] | None
    skipped: list[str] = dataclasses.field(default_factory=list)
    skip_reasons: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def facts(self) -> DataFacts:
        """What this dataset is: its image shape, classes, size and source."""
        return DataFacts(self.image_shape, self.num_classes, tuple(self.class_names or ()), len(self.x_train),
                         self.source)

    @property
    def num_classes(self) -> int:
        """Number of classes; 0 when the data is unlabeled."""
        if self.y_train is None:
            return 0
        if self.class_names:
            return len(self.class_names)
        return int(max(self.y_train.max(initial=-1), self.y_test.max(initial=-1))) + 1
