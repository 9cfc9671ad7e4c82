"""Reading examples in batches, whatever a `LabeledData.x` is: a tensor is indexed in this
process, an `ImageSource` (a folder streamed from its files) is decoded batch by batch in
DataLoader worker processes, ahead of use. Training, evaluation, embedding and fingerprints
read through `load_batches`, so none of them needs to know which kind it holds."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from siamese.data.folders.listing import pool_context
from siamese.data.labeled import ImageSource, Inputs
from siamese.errors import ConfigError, DataError


def ranges(n: int, batch_size: int) -> list[torch.Tensor]:
    """Consecutive batches of positions covering 0..n-1 in order, for reading everything
    (embedding a whole set).

    Returns:
        ceil(n / batch_size) int64 tensors (B,), the last one shorter.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    return [torch.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


class _BatchDecoder(torch.utils.data.Dataset):
    """A dataset whose items are whole batches: item `positions` is the decoded batch."""

    def __init__(self, images: ImageSource) -> None:
        self.images = images

    def __getitem__(self, positions: np.ndarray) -> torch.Tensor | _Failure:
        try:
            return self.images.decode_batch(positions)
        except DataError as err:
            # Returned, not raised: the DataLoader would wrap it in a worker traceback.
            return _Failure(str(err))

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class _Failure:
    message: str


class _AsArrays:
    """The index batches as (B,) int64 arrays: they travel to the workers pickled, cheaper
    than tensors (each of which would get a shared-memory file)."""

    def __init__(self, batches: Iterable[Any]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[np.ndarray]:
        for batch in self.batches:
            if isinstance(batch, torch.Tensor):
                batch = batch.detach().cpu().numpy()
            yield np.asarray(batch, dtype=np.int64).reshape(-1)

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]


def _keep(batch: Any) -> Any:
    """The DataLoader's collate step: a batch is already one tensor."""
    return batch


def _one_thread(worker_id: int) -> None:
    """Each worker decodes with one thread: the workers are the parallelism."""
    torch.set_num_threads(1)


class StreamedBatches:
    """The decoded batches of `load_batches`, in order: an iterator, also a context manager
    (`close` stops the workers early; they stop by themselves at the end)."""

    def __init__(
        self,
        images: Inputs,
        batches: Iterable[Any],
        workers: int = 0,
        pin_memory: bool = False,
        prefetch: int = 2,
    ) -> None:
        self._loader: Iterator[Any] | None = None
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
            raise ConfigError(f"workers must be an integer >= 0, got {workers!r}")
        if not isinstance(prefetch, int) or prefetch < 1:
            raise ConfigError(f"prefetch must be an integer >= 1, got {prefetch!r}")
        self.images = images
        self.batches = batches
        self.pin_memory = pin_memory and torch.cuda.is_available()
        if isinstance(images, ImageSource):
            loader = torch.utils.data.DataLoader(
                _BatchDecoder(images),
                batch_size=None,
                sampler=_AsArrays(batches),
                num_workers=workers,
                collate_fn=_keep,
                pin_memory=self.pin_memory,
                prefetch_factor=prefetch if workers else None,
                worker_init_fn=_one_thread if workers else None,
                multiprocessing_context=pool_context() if workers else None,
                # Its own generator: the loader draws its workers' seed from it, never from
                # torch's global one, which seeds a run's weights and must not move.
                generator=torch.Generator().manual_seed(0),
            )
            self._loader = iter(loader)
            self._workers = workers
        else:
            self._plain = iter(batches)

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> StreamedBatches:
        return self

    def __next__(self) -> torch.Tensor:
        if self._loader is None:
            index = next(self._plain)
            x = self.images[index]
            return x.pin_memory() if self.pin_memory else x
        try:
            batch = next(self._loader)
        except StopIteration:
            self.close()
            raise
        except RuntimeError as err:
            self.close()
            if "exited unexpectedly" in str(err):
                raise DataError(
                    f"a worker process died while decoding images of {self.images!r} (out of "
                    "memory, or a crash in an image library): run with workers=0 to see which "
                    "file, or use fewer workers"
                ) from None
            raise DataError(f"decoding images of {self.images!r} failed: {err}") from err
        if isinstance(batch, _Failure):
            self.close()
            raise DataError(batch.message)
        return batch

    def close(self) -> None:
        """Stop the worker processes (if any) now."""
        loader, self._loader = self._loader, None
        if loader is not None:
            shutdown = getattr(loader, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            self._plain = iter(())

    def __enter__(self) -> StreamedBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def load_batches(
    images: Inputs,
    batches: Iterable[torch.Tensor | np.ndarray | Sequence[int]],
    workers: int = 0,
    pin_memory: bool = False,
    prefetch: int = 2,
) -> StreamedBatches:
    """The images of each index batch, in the order of `batches`, decoded ahead of use.

    Args:
        images: (N, C, H, W) uint8: a StreamedImages (decoded in worker processes) or a
            tensor (indexed in this process: the same loop serves both).
        batches: index batches, each (B,) int64 positions in 0..N-1 (a tensor, array or list),
            e.g. a `PKSampler`, or `ranges(N, B)` for everything in order.
        workers: decoding processes (fork on Linux, spawn elsewhere; one torch thread each);
            0 decodes in this process.
        pin_memory: give page-locked batches (for non-blocking copies to a GPU); ignored
            without CUDA.
        prefetch: batches each worker decodes ahead; at most workers × prefetch batches wait
            in memory.
    Returns:
        StreamedBatches: an iterator of uint8 (B, C, H, W) tensors.
    Raises:
        DataError (while iterating): a file cannot be decoded (named), or a worker died.
    """
    return StreamedBatches(images, batches, workers, pin_memory, prefetch)
