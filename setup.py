"""tfgrow: grow compact networks during training (ICLR 2021) and MorphNet, on Keras 3."""

import setuptools

setuptools.setup(
    name="tfgrow",
    version="0.1.0",
    description="Growing efficient deep networks by structured continuous sparsification",
    packages=setuptools.find_packages(include=["tfgrow", "tfgrow.*", "launchers"]),
    python_requires=">=3.10",
    # TensorFlow itself is left to requirements.txt: tensorflow-cpu and tensorflow are separate
    # distributions of one module, and naming either here would pull in the other.
    install_requires=[
        "keras>=3.15,<3.16",
        "tensorboard>=2.21,<2.22",
        "tensorflow-datasets>=4.9.10",
        "gin-config>=0.5.0",
        "absl-py>=2.1",
    ],
    # The magnitude-pruning baseline (tensorflow-model-optimization needs Keras 2: tf_keras).
    extras_require={"pruning": ["tensorflow-model-optimization>=0.8.1", "tf-keras>=2.21,<2.22"]},
)
