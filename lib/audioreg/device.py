"""The one place that turns a device name into a torch device (features on a GPU, training)."""

from __future__ import annotations


def resolve_device(device="auto"):
    """Turn ``"auto"`` into CUDA when available, else CPU; pass anything else to torch.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    Returns
    -------
    device : torch.device

    Raises
    ------
    RuntimeError
        If CUDA is asked for but not available.
    """
    import torch

    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} requested but CUDA is not available")
    return device
