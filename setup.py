"""vpmnet: VPM-Net text-to-image person retrieval in MindSpore."""
from setuptools import find_packages, setup

setup(
    name="vpmnet",
    version="0.1.0",
    description="VPM-Net (VPT prompts, KAN adapters, MINP loss) for text-to-image person retrieval in MindSpore",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    package_dir={"": "src"},
    packages=find_packages("src"),
    python_requires=">=3.9,<3.12",
    install_requires=[
        "mindspore==2.10.0",
        "numpy>=1.25,<2",
        "pillow",
        "pyyaml",
        "tokenizers",
        "safetensors",
        "tqdm",
    ],
    extras_require={
        "test": ["pytest", "torch==2.13.0", "transformers", "ftfy", "regex", "scipy", "faiss-cpu"],
        "faiss": ["faiss-cpu"],
    },
    entry_points={"console_scripts": ["vpmnet=vpmnet.cli:main"]},
)
