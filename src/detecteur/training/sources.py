"""What each dataset source of `../shared/datasets/` is, for the model card: its licence as its PROVENANCE.md
states it, and what a held-out generator's fakes are in plain words."""

from __future__ import annotations

# Licences as stated in each dataset's PROVENANCE.md (../shared/datasets/*/PROVENANCE.md).
DATASET_LICENCES = {
    "stylegan-ffhq": "FFHQ images under their own licences (CC BY / CC BY-NC-SA 4.0 for the compilation); "
    "Kaggle 140k set lists no licence beyond its sources",
    "lfw-faceswap": "LFW: no explicit licence (research use); the FaceSwap repository has no LICENSE",
    "sdfd-sd21": "not stated (research/evaluation use; cite SDFD, FG 2024)",
    "stylegan2-tpdne": "repository GPL-3.0 covers the crawler; image rights unclear (boredhumans.com)",
    "utkface-real": "UTKFace: non-commercial research only",
    "ciplab-photoshop": "not stated; Kaggle page reportedly CC BY-NC-SA 4.0 / unknown",
    "inswapper-ffhq": "repository README says MIT (no LICENSE file); FFHQ sources CC BY-NC-SA 4.0; inswapper_128 "
    "weights non-commercial research only",
    "london-faceset": "CC BY 4.0 (DeBruine & Jones)",
    "web-selfies-real": "repository MIT; the web-scraped photos have no stated image licence",
    "taef2": "TAEF2 weights MIT; each reconstruction inherits the licence of the real face it was made from",
}

# What each held-out fake source is, in the words of someone who has not read the dataset's PROVENANCE.md.
GENERATOR_DESCRIPTIONS = {
    "stylegan-ffhq": "StyleGAN (v1) faces",
    "stylegan2-tpdne": "StyleGAN2 faces",
    "sdfd-sd21": "Stable Diffusion 2.1 faces",
    "lfw-faceswap": "FaceSwap-tool face swaps in news photos",
    "inswapper-ffhq": "InsightFace inswapper face swaps",
}
