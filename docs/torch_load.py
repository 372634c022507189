"""Load a cnn-visualizer checkpoint (.npz) into a torch.nn.Sequential: layer i of the spec is module i,
and the weights are stored in PyTorch's layouts, so they load as they are. (README: "Take a model to PyTorch".)"""
import json

import numpy as np
import torch
from torch import nn

MODULES = {  # spec layer l -> module; a: the shapes of that layer's arrays in the checkpoint
    "conv2d": lambda l, a: nn.Conv2d(a["weight"][1], l["filters"], l["kernel_size"], l["stride"], l["padding"], bias=l["bias"]),
    "dense": lambda l, a: nn.Linear(a["weight"][1], l["units"], bias=l["bias"]),
    "batchnorm2d": lambda l, a: nn.BatchNorm2d(a["running_mean"][0], l["eps"], l["momentum"], l["affine"]),
    "maxpool2d": lambda l, a: nn.MaxPool2d(l["pool_size"], l["stride"], l["padding"]),
    "avgpool2d": lambda l, a: nn.AvgPool2d(l["pool_size"], l["stride"], l["padding"]),  # zero padding counts, as here
    "global_avgpool2d": lambda l, a: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
    "relu": lambda l, a: nn.ReLU(), "leaky_relu": lambda l, a: nn.LeakyReLU(l["alpha"]), "sigmoid": lambda l, a: nn.Sigmoid(),
    "tanh": lambda l, a: nn.Tanh(), "dropout": lambda l, a: nn.Dropout(l["rate"]), "flatten": lambda l, a: nn.Flatten(),
    "softmax": lambda l, a: nn.Softmax(dim=1),
}


def load_sequential(path: str) -> nn.Sequential:
    z = np.load(path, allow_pickle=False)
    state = {k.removeprefix("layers."): torch.from_numpy(z[k]) for k in z.files if k.startswith("layers.")}
    arrays = lambda i: {k.split(".")[1]: v.shape for k, v in state.items() if k.split(".")[0] == str(i)}  # noqa: E731
    net = nn.Sequential(*(MODULES[l["type"]](l, arrays(i)) for i, l in enumerate(json.loads(str(z["spec"]))["layers"])))
    net.load_state_dict(state)  # strict: every weight and running statistic has its place
    return net.eval()  # dropout off, batch norm on its running statistics; the classes: list(z["classes"])
