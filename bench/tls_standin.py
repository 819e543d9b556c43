"""WorkSpaces over TLS for the benchmark: every call answered after 50 ms, in one
write, on keep-alive connections, with a self-signed certificate for localhost.

Usage: tls_standin.py PORT DIR   (writes DIR/ca.pem, then prints "ready")
"""

import asyncio
import datetime
import ipaddress
import json
import ssl
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def certificate(directory):
    """A CA (DIR/ca.pem, the trust the client is given) and a server certificate
    for localhost signed by it: a CA certificate may not serve as its own leaf."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def signed(subject, key, issuer, issuer_key, ca):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = signed("teardown bench CA", ca_key, "teardown bench CA", ca_key, True)
    leaf = signed("localhost", key, "teardown bench CA", ca_key, False)
    with open(f"{directory}/ca.pem", "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(f"{directory}/cert.pem", "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    with open(f"{directory}/key.pem", "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def answer(target, body):
    if target.endswith("DescribeWorkspaces"):
        ids = body.get("WorkspaceIds", [])
        return {"Workspaces": [{"WorkspaceId": i, "State": "AVAILABLE"} for i in ids]}
    if target.endswith("DescribeTags"):
        return {"TagList": []}
    return {"FailedRequests": []}


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            headers = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            await asyncio.sleep(0.05)
            payload = json.dumps(answer(headers.get("x-amz-target", ""), json.loads(raw or b"{}"))).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\n"
                + f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main(port, directory):
    certificate(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(f"{directory}/cert.pem", f"{directory}/key.pem")
    server = await asyncio.start_server(serve, "127.0.0.1", port, ssl=context, backlog=512)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
