"""Names of the datasets and models the commands offer, without importing torch.

``kmtpe --help`` and argument parsing need the names only; the modules that build the
datasets (:mod:`optuna_kmtpe._zoo.data`) and models (:mod:`optuna_kmtpe._zoo.models`) import torch.
"""

from __future__ import annotations


#: Dataset name -> default model of ``kmtpe search``.
DATASETS: dict[str, str] = {
    "digits": "small_cnn",
    "mnist-5k": "mnist_cnn",
    "cifar10": "resnet20",
    "cifar100": "resnet18_cifar",
}

MODEL_NAMES = (
    "resnet20",
    "resnet18_cifar",
    "mobilenetv1",
    "mobilenetv2",
    "resnet18",
    "resnet50",
    "small_cnn",
    "mnist_cnn",
)
