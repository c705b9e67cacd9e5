"""The keys and certificates of the test cluster, made with ``cryptography``.

A CA of its own signs the apiserver's serving certificate (SAN: IP 127.0.0.1, DNS localhost
and the in-cluster names), so a client can verify the server with the CA's PEM, as it would
with a real cluster's ``certificate-authority-data``. The fake kubelet serves with a
self-signed certificate: the apiserver does not verify kubelet certificates unless told to.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=30)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject: str, issuer: x509.Name | None, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
    )


def _sans(dns: list[str], ips: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    return x509.SubjectAlternativeName(names)


class Pki:
    """Writes ``ca.crt``, ``apiserver.crt/.key``, ``sa.key/.pub`` into ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca_file = directory / "ca.crt"
        self.server_cert = directory / "apiserver.crt"
        self.server_key = directory / "apiserver.key"
        self.sa_key = directory / "sa.key"
        self.sa_pub = directory / "sa.pub"

    def create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            _builder("offload-test-ca", None, ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
        cert = (
            _builder("kube-apiserver", ca_cert.subject, key.public_key())
            .add_extension(_sans(dns, ["127.0.0.1", "10.96.0.1"]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file.write_bytes(_cert_pem(ca_cert))
        self.server_cert.write_bytes(_cert_pem(cert))
        self.server_key.write_bytes(_key_pem(key))
        self.server_key.chmod(0o600)
        # Service-account tokens are signed with RSA (RS256), as kube-apiserver expects.
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key.write_bytes(_key_pem(sa))
        self.sa_key.chmod(0o600)
        self.sa_pub.write_bytes(sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def self_signed(cert_file: Path, key_file: Path, name: str) -> None:
    """A self-signed serving certificate for ``name`` and 127.0.0.1 (the fake kubelet's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(name, None, key.public_key())
        .add_extension(_sans([name, "localhost"], ["127.0.0.1"]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file.write_bytes(_cert_pem(cert))
    key_file.write_bytes(_key_pem(key))
    key_file.chmod(0o600)
