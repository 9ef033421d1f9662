"""What the host knows about each framework without importing it.

The adapter that runs inside the environment lives in runner/probe/adapters/<name>.py;
this catalogue lets matrix.toml be validated on the host: which model names the framework
has (across the versions the matrix may pin), and which package's version identifies it.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameworkInfo:
    name: str
    version_package: str  # its pinned version selects the published-table revision
    packages: tuple  # distributions reported as "the framework" in the report
    models: frozenset  # model names the framework's model zoo knows, in any supported version
    weights_host: str  # where its pretrained weights download from (WEIGHTS=auto checks it)


FRAMEWORKS = {
    "torchvision": FrameworkInfo(
        name="torchvision",
        version_package="torchvision",
        packages=("torch", "torchvision"),
        weights_host="download.pytorch.org",
        models=frozenset({
            "alexnet", "vgg11", "vgg16", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
            "densenet121", "densenet161", "densenet169", "densenet201", "inception_v3", "googlenet",
            "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "squeezenet1_0", "squeezenet1_1",
            "shufflenet_v2_x1_0", "mnasnet1_0", "resnext50_32x4d", "wide_resnet50_2", "efficientnet_b0",
            "regnet_y_400mf", "convnext_tiny", "vit_b_16", "swin_t",
        }),
    ),
}
