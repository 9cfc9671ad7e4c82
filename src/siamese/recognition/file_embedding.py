"""Embedding many image files in bounded memory: a batch of files at a time, decoded and
prepared (face step, resize) by DataLoader worker processes while the model embeds the batch
before; and the contiguous share of a file list each `torchrun` rank embeds.

Only one batch of pixels per worker (and the (N, D) embeddings) is ever in memory, whatever
the number of files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from siamese.errors import DataError, SiameseError
from siamese.evaluation.embed import count_bar
from siamese.recognition.model_inputs import Preprocessing, as_image_list, model_input
from siamese.recognition.recognition_model import RecognitionModel


@dataclass(frozen=True)
class _Failed:
    """A batch a worker could not prepare: the user's error, raised again in the main
    process as itself (a DataLoader would wrap it in a worker traceback)."""

    error: SiameseError


class _FileBatches(torch.utils.data.Dataset):
    """Item i: batch i of the files as model inputs ((B, *input_shape) uint8 numpy). It holds
    the preprocessing only, never the model: the workers decode, the main process embeds."""

    def __init__(self, preprocessing: Preprocessing, paths: Sequence[Path], batch_size: int):
        self.preprocessing, self.paths, self.batch_size = preprocessing, list(paths), batch_size

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def __getitem__(self, index: int) -> Any:
        chunk = self.paths[index * self.batch_size : (index + 1) * self.batch_size]
        try:
            return model_input(as_image_list(chunk), self.preprocessing)
        except SiameseError as err:
            return _Failed(err)


def _as_is(item: Any) -> Any:
    return item


def prepared_batches(
    recognizer: RecognitionModel, paths: Sequence[Path], batch_size: int, workers: int = 0
) -> Iterator[Any]:
    """The model inputs of `paths`, `batch_size` files at a time and in order.

    Args:
        workers: DataLoader worker processes decoding ahead (0: in this process).
    Raises:
        DataError: a file that is missing or not an image (named), as `prepare` raises it.
    """
    batches = _FileBatches(recognizer.preprocessing, paths, batch_size)
    for item in items_ahead(batches, workers):
        if isinstance(item, _Failed):
            raise item.error
        yield item


def items_ahead(items: Any, workers: int) -> Iterator[Any]:
    """`items[0]`, `items[1]`, … of a map-style dataset (each item a whole batch), made by
    `workers` DataLoader processes ahead of the main process (0: made here, in turn), in
    order. The workers run one thread each: the main process's threads run the model."""
    if workers == 0 or len(items) < 2:
        yield from (items[i] for i in range(len(items)))
        return
    from siamese.data.folders.listing import pool_context

    yield from torch.utils.data.DataLoader(
        items,
        batch_size=None,
        num_workers=workers,
        collate_fn=_as_is,
        multiprocessing_context=pool_context(),
        prefetch_factor=2,
        worker_init_fn=_one_thread,
        generator=torch.Generator().manual_seed(0),  # leaves torch's global one alone
    )


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # the workers decode; the main process's threads run the model


def embed_files(
    recognizer: RecognitionModel,
    paths: Sequence[Path],
    batch_size: int = 256,
    workers: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """(N, D) float32 embeddings of image files, in the order given, in bounded memory.

    Raises:
        DataError: a file that is missing or not an image (named), or no files.
    """
    if not paths:
        raise DataError("no image files to embed")
    # One (N, D) output filled batch by batch: no small long-lived pieces between the large
    # short-lived buffers of each forward pass, which would keep the heap from reusing them
    # (with the `siamese` command's allocator settings the process then grows with N).
    out: torch.Tensor | None = None
    done = 0
    with count_bar(progress) as bar:
        task = bar.add_task(f"embedding {len(paths):,} images", total=len(paths)) if bar else None
        for inputs in prepared_batches(recognizer, paths, batch_size, workers):
            z = torch.as_tensor(recognizer.embed_prepared(inputs, batch_size))
            if out is None:
                out = torch.empty((len(paths), z.shape[1]), dtype=torch.float32)
            out[done : done + z.shape[0]] = z
            done += z.shape[0]
            if bar is not None:
                bar.advance(task, z.shape[0])
    assert out is not None and done == len(paths)
    return out


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of the contiguous share of n items that `rank` of `world_size` takes: the
    shares differ in size by at most one, and in rank order they are the whole list."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    return n * rank // world_size, n * (rank + 1) // world_size
