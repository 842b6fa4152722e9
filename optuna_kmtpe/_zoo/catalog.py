"""Names of the datasets and models the commands offer, without importing torch.

``kmtpe --help`` and argument parsing need the names only; the modules that build the
datasets (:mod:`optuna_kmtpe._zoo.data`) and models (:mod:`optuna_kmtpe._zoo.models`) import torch.
"""

from __future__ import annotations


#: Dataset name -> default model of ``kmtpe search``.
DATASETS: dict[str, str] = {
    "digits": "small_cnn",
    "mnist-5k": "mnist_cnn",
    "fashion-mnist": "fmnist_resnet",
    "cifar10": "resnet20",
    "cifar100": "resnet18_cifar",
}

#: Dataset name -> images of the fixed training subset the search's trials train on each
#: epoch (``--trial-subset``); the final training always uses the whole training split.
TRIAL_SUBSET: dict[str, int] = {"fashion-mnist": 10_000}

MODEL_NAMES = (
    "resnet20",
    "resnet18_cifar",
    "mobilenetv1",
    "mobilenetv2",
    "resnet18",
    "resnet50",
    "small_cnn",
    "mnist_cnn",
    "fmnist_resnet",
)
