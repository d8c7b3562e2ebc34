"""PayPal's webhook envelope and signature: the body is the event JSON, the signature is
SHA256withRSA over `transmission_id|transmission_time|webhook_id|crc32(raw body)` (the CRC
as an unsigned decimal), checked against the certificate named by PAYPAL-CERT-URL."""
import base64
import datetime
import json
import secrets
import zlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from paypal_emulator.events import timestamp
from paypal_emulator.links import link

AUTH_ALGO = "SHA256withRSA"
EVENT_VERSION = "1.0"
# PayPal retries a delivery without a 2xx "25 times over the course of three days". It does
# not publish the schedule; this one doubles from one minute up to four hours between tries,
# which puts the 25th retry about three days after the first delivery.
RETRY_FIRST_DELAY_S = 60
RETRY_MAX_DELAY_S = 4 * 3600
CERT_VALIDITY = datetime.timedelta(days=365)


def retry_delays_s(retries, first_s=RETRY_FIRST_DELAY_S, max_s=RETRY_MAX_DELAY_S, scale=1.0):
    """The wait before each retry: [60, 120, 240, …, 14400, 14400, …] times `scale`."""
    return [min(first_s * 2 ** n, max_s) * scale for n in range(retries)]


def envelope(event, event_id, now, urls):
    """The event body PayPal posts: id, event_version, create_time, resource_type,
    resource_version, event_type, summary, resource, links."""
    return {"id": event_id, "event_version": EVENT_VERSION, "create_time": timestamp(now),
            "resource_type": event.resource_type, "resource_version": event.resource_version,
            "event_type": event.event_type, "summary": event.summary, "resource": event.resource,
            "links": [link(urls.event(event_id), "self"), link(urls.event(event_id) + "/resend", "resend", "POST")]}


def serialize(body):
    """The raw bytes on the wire: compact JSON (as PayPal sends it), UTF-8. A receiver that
    parses and re-serialises gets different bytes, hence a different CRC: verify the raw body."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signed_message(transmission_id, transmission_time, webhook_id, body):
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body) & 0xFFFFFFFF}".encode()


class SigningKey:
    """One emulator's webhook key and its self-signed certificate, served at the cert URL."""

    def __init__(self, private_key, certificate, cert_id):
        self.private_key = private_key
        self.certificate = certificate
        self.cert_id = cert_id

    @classmethod
    def generate(cls, now):
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "interKanect PayPal emulator"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "paypal-emulator.local")])
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                       .public_key(private_key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + CERT_VALIDITY)
                       .sign(private_key, hashes.SHA256()))
        # PayPal's shape exactly (/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77): the
        # gateway fetches no other path.
        cert_id = "CERT-" + "-".join(secrets.token_hex(4) for _ in range(3))
        return cls(private_key, certificate, cert_id)

    @property
    def cert_pem(self):
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def sign(self, transmission_id, transmission_time, webhook_id, body):
        signature = self.private_key.sign(signed_message(transmission_id, transmission_time, webhook_id, body),
                                          padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def headers(self, transmission_id, transmission_time, webhook_id, body, cert_url):
        return {"Content-Type": "application/json",
                "PAYPAL-TRANSMISSION-ID": transmission_id,
                "PAYPAL-TRANSMISSION-TIME": transmission_time,
                "PAYPAL-TRANSMISSION-SIG": self.sign(transmission_id, transmission_time, webhook_id, body),
                "PAYPAL-CERT-URL": cert_url,
                "PAYPAL-AUTH-ALGO": AUTH_ALGO}


def verify(cert_pem, transmission_id, transmission_time, webhook_id, body, signature_b64):
    """True when the signature is the certificate key's over this transmission and body."""
    try:
        public_key = x509.load_pem_x509_certificate(cert_pem).public_key()
        public_key.verify(base64.b64decode(signature_b64, validate=True),
                          signed_message(transmission_id, transmission_time, webhook_id, body),
                          padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
