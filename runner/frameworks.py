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
    system_packages: tuple = ()  # Debian/Ubuntu packages its wheels need in a container image


FRAMEWORKS = {
    "keras": FrameworkInfo(
        name="keras",
        # Keras applications ship inside TensorFlow (tf.keras); TF's version picks the table.
        version_package="tensorflow",
        packages=("tensorflow",),
        weights_host="storage.googleapis.com",
        models=frozenset({
            "ResNet50", "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2", "MobileNet", "MobileNetV2",
            "MobileNetV3Large", "MobileNetV3Small", "DenseNet121", "DenseNet169", "DenseNet201", "InceptionV3",
            "InceptionResNetV2", "Xception", "VGG16", "VGG19", "NASNetMobile", "EfficientNetB0", "ConvNeXtTiny",
        }),
    ),
    "gluoncv": FrameworkInfo(
        name="gluoncv",
        version_package="gluoncv",
        packages=("mxnet", "gluoncv"),
        weights_host="apache-mxnet.s3-accelerate.dualstack.amazonaws.com",
        system_packages=("libgomp1", "libquadmath0"),  # libmxnet.so links the system OpenMP (1.9: and quadmath)
        models=frozenset({
            "resnet18_v1", "resnet34_v1", "resnet50_v1", "resnet101_v1", "resnet152_v1", "resnet18_v1b",
            "resnet50_v1b", "resnet50_v1c", "resnet50_v1d", "resnet101_v1b", "resnet101_v1d", "resnet50_v2",
            "mobilenet1.0", "mobilenet0.5", "mobilenetv2_1.0", "mobilenetv3_large", "densenet121", "densenet169",
            "densenet201", "inceptionv3", "vgg16", "squeezenet1.0", "resnext50_32x4d", "senet_154",
        }),
    ),
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
