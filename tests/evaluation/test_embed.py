"""Running a model over a dataset."""

import torch

from siamese.evaluation.embed import PROGRESS_FROM, embed


def test_embed_batches_and_progress_give_the_same_embeddings() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.BatchNorm1d(4))
    model.train()
    x = torch.randn(PROGRESS_FROM + 7, 6)
    quiet = embed(model, x, batch_size=4096)
    shown = embed(model, x, batch_size=1000, progress=True)
    torch.testing.assert_close(quiet, shown)
    assert quiet.shape == (PROGRESS_FROM + 7, 4) and quiet.dtype == torch.float32
    assert model.training  # its mode is restored
    model.eval()
    torch.testing.assert_close(quiet, model(x))
