"""Writes the end-to-end test's provenance files, made at test time with the provenance test fixtures
(tests/provenance_fixtures.py) so no signed binary is committed:

- `signed-face.jpg`: a sample face signed with C2PA Content Credentials declaring `trainedAlgorithmicMedia`, by a
  certificate chain made on the spot (untrusted unless the server trusts `test-ca.pem`);
- `test-ca.pem`: that chain's CA, for a server started with DETECTEUR_C2PA_TRUST_ANCHORS;
- `sd-parameters.png`: a sample face as a PNG carrying Stable Diffusion's `parameters` text chunk.

Usage: .venv/bin/python frontend/e2e/make_provenance.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, PngImagePlugin

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests import provenance_fixtures as fx  # noqa: E402

SAMPLES = ROOT / "tests" / "data" / "samples"
# A face the shipped model decides (synthetic, well above its threshold): the trusted-signature test needs a decided
# face to turn uncertain.
SIGNED_FACE = SAMPLES / "lfw-faceswap-fake-fake_1005.jpg"
PNG_FACE = SAMPLES / "stylegan-ffhq-real-00006.jpg"


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "signed-face.jpg").write_bytes(fx.signed(SIGNED_FACE.read_bytes(), "image/jpeg"))
    (out / "test-ca.pem").write_bytes(fx.certificates().ca_pem)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", fx.SD_PARAMETERS)
    (out / "sd-parameters.png").write_bytes(fx.encoded(Image.open(PNG_FACE).convert("RGB"), "PNG", pnginfo=info))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
