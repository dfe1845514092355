"""Import name -> pip distribution, for the well-known names that differ, and name validation."""

from __future__ import annotations

import re
from typing import Optional

IMPORT_TO_DIST = {
    "cv2": "opencv-python",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "attr": "attrs",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "jose": "python-jose",
    "magic": "python-magic",
    "Crypto": "pycryptodome",
    "OpenSSL": "pyopenssl",
    "serial": "pyserial",
    "usb": "pyusb",
    "fitz": "pymupdf",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "google.protobuf": "protobuf",
    "sentencepiece": "sentencepiece",
    "tensorboardX": "tensorboardX",
    "wandb": "wandb",
    "flash_attn": "flash-attn",
    "faiss": "faiss-cpu",
    "Levenshtein": "python-Levenshtein",
    "git": "GitPython",
    "lightning_fabric": "lightning-fabric",
    "pytorch_lightning": "pytorch-lightning",
    "jwt": "PyJWT",
    "zmq": "pyzmq",
    "websocket": "websocket-client",
    "MySQLdb": "mysqlclient",
    "psycopg2": "psycopg2-binary",
    "mpl_toolkits": "matplotlib",
    "absl": "absl-py",
    "tree": "dm-tree",
    "Bio": "biopython",
    "igraph": "python-igraph",
    "llama_cpp": "llama-cpp-python",
    "vllm": "vllm",
}
# Never pip-install these: stdlib-adjacent, or pulled from PyPI they would break the image.
REFUSED = {"torch_xla", "tensorrt", "distutils", "tkinter", "_ctypes", "_sqlite3", "_lzma", "_bz2"}
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_DIST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")


def is_valid_dist(name: str) -> bool:
    """A PEP 508 project name, nothing else: no spaces, options, URLs or paths."""
    return bool(_DIST.match(name))


def dist_for_module(module: str) -> Optional[str]:
    """The distribution that provides `module` (dotted or not), or None if not installable."""
    if not _MODULE.match(module):
        return None
    top = module.split(".")[0]
    if top in REFUSED or top.startswith("_"):
        return None
    dist = IMPORT_TO_DIST.get(module) or IMPORT_TO_DIST.get(top) or top.replace("_", "-")
    return dist if is_valid_dist(dist) else None
