"""Provenance fixtures made on the spot, no network: images signed with C2PA Content Credentials through
c2pa-python's Builder with a certificate chain made here with `cryptography` (so untrusted unless the test trusts
its CA), a tampered copy, and XMP / PNG-text / EXIF variants written with Pillow."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image, PngImagePlugin

GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAPTURED = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


@dataclass(frozen=True)
class TestCertificates:
    chain_pem: bytes  # signing certificate then CA
    key_pem: bytes
    ca_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Detecteur tests"),
        ]
    )


def _usage(*, sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not sign,
        crl_sign=not sign,
        encipher_only=False,
        decipher_only=False,
    )


@cache
def certificates() -> TestCertificates:
    """A CA and an ES256 signing certificate under it, valid from yesterday for 30 days."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Detecteur test CA"))
        .issuer_name(_name("Detecteur test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(sign=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("Detecteur test signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return TestCertificates(
        chain_pem=leaf.public_bytes(pem) + ca.public_bytes(pem),
        key_pem=key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        ca_pem=ca.public_bytes(pem),
    )


def encoded(image: Image.Image, image_format: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def plain_image(size: int = 96) -> Image.Image:
    gradient = Image.linear_gradient("L").resize((size, size))
    return Image.merge("RGB", (gradient, gradient.rotate(90), gradient.rotate(180)))


def signed(
    source: bytes | None = None,
    mime: str = "image/jpeg",
    source_type: str | None = GENERATED,
    generator: str = "detecteur-tests",
) -> bytes:
    """`source` (default: a small JPEG) with a C2PA manifest: one c2pa.created action carrying `source_type`."""
    import c2pa

    if source is None:
        source = encoded(plain_image())
    action: dict[str, str] = {"action": "c2pa.created"}
    if source_type:
        action["digitalSourceType"] = source_type
    manifest = {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": "fixture",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
    }
    certs = certificates()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, certs.chain_pem, certs.key_pem, None))
    output = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, mime, io.BytesIO(source), output)
    return output.getvalue()


def tampered(signed_jpeg: bytes) -> bytes:
    """The signed JPEG with image data changed after signing: the manifest's hash of the content no longer matches."""
    damaged = bytearray(signed_jpeg)
    end = damaged.rfind(b"\xff\xd9")
    for offset in (40, 80, 120):
        damaged[end - offset] ^= 0x01
    return bytes(damaged)


def xmp_packet(source_type: str = GENERATED, creator_tool: str | None = None, padding: int = 0) -> bytes:
    tool = f' xmp:CreatorTool="{creator_tool}"' if creator_tool else ""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        f' xmlns:xmp="http://ns.adobe.com/xap/1.0/"{tool}>'
        f"<Iptc4xmpExt:DigitalSourceType>{source_type}</Iptc4xmpExt:DigitalSourceType>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>" + " " * padding + '<?xpacket end="w"?>'
    ).encode()


def jpeg_with_xmp(packet: bytes) -> bytes:
    return encoded(plain_image(), "JPEG", xmp=packet)


def png_with_text(**chunks: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    return encoded(plain_image(), "PNG", pnginfo=info)


SD_PARAMETERS = (
    "portrait photo of a woman, 85mm\nNegative prompt: blurry\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 512x512, Model: sd21"
)


def jpeg_with_camera_exif(make: str = "Canon", model: str = "Canon EOS R6", when: str = "2024:05:01 10:20:30") -> bytes:
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    exif.get_ifd(0x8769)[0x9003] = when
    return encoded(plain_image(), "JPEG", exif=exif.tobytes())


def jpeg_with_software(software: str) -> bytes:
    exif = Image.Exif()
    exif[0x0131] = software
    return encoded(plain_image(), "JPEG", exif=exif.tobytes())


def exif_bomb() -> bytes:
    """A JPEG whose EXIF IFD claims 65535 entries of 4 GB each and points its next IFD back at itself."""
    ifd = b"MM\x00*\x00\x00\x00\x08" + b"\xff\xff" + (b"\x01\x0f\x00\x02\xff\xff\xff\xff\x00\x00\x00\x08" * 200)
    ifd += b"\x00\x00\x00\x08"
    return encoded(plain_image(), "JPEG", exif=b"Exif\x00\x00" + ifd)


def malformed_manifest() -> bytes:
    """A signed JPEG whose manifest store's boxes are overwritten with junk (the JUMBF headers survive)."""
    data = bytearray(signed())
    start = data.find(b"jumb")
    data[start + 60 : start + 400] = bytes(range(256)) + bytes(84)
    return bytes(data)


def nested_boxes(depth: int = 5000) -> bytes:
    """A JPEG with an APP11 JUMBF segment of `depth` nested 'jumb' superboxes labelled c2pa."""
    inner = b"\x00\x00\x00\x08jumb" * depth
    payload = b"JP\x00\x01\x00\x00\x00\x01" + inner[:60000] + b"c2pa"
    jpeg = encoded(plain_image())
    segment = b"\xff\xeb" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + segment + jpeg[2:]
