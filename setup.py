"""edgecnn: classic CNNs, shrunk for edge devices, with measured numbers.

``pip install -e ".[full]"`` gives the whole toolkit (TensorFlow, tf-keras, tfmot, LiteRT).
The base install (numpy, Pillow, click) is the device side: ``edgecnn-device`` runs and
benchmarks ``.tflite`` files on a Raspberry Pi or phone with a TFLite runtime only
(``pip install ".[device]"`` adds LiteRT; or install ``tflite-runtime`` yourself).
"""

from setuptools import find_packages, setup

FULL = [
    "tensorflow>=2.21,<2.22",
    "tf-keras>=2.21,<2.22",
    "tensorflow-model-optimization>=0.8,<0.9",
    "ai-edge-litert>=2.0",
    "scikit-learn>=1.3",
    "pyyaml>=6.0",
    "matplotlib>=3.7",
]

setup(
    name="edgecnn",
    version="0.1.0",
    description="Shrink classic CNNs for edge devices and measure what each step costs",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["edgecnn", "edgecnn.*"]),
    install_requires=["numpy>=1.23", "pillow>=9.0", "click>=8.0"],
    extras_require={
        "full": FULL,
        "device": ["ai-edge-litert>=2.0"],
        "dev": FULL + ["pytest>=7", "hypothesis>=6", "ruff>=0.4"],
    },
    entry_points={
        "console_scripts": [
            "edgecnn=edgecnn.cli:main",
            "edgecnn-device=edgecnn.device.cli:main",
        ]
    },
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering :: Artificial Intelligence"],
)
