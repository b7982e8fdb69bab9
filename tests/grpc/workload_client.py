#!/usr/bin/env python3
"""A SPIFFE Workload API client on grpcio (gRPC C-core, the stack py-spiffe is built on).

Generates its stubs from the repository's workload.proto with grpcio-tools, calls the five
methods of the socket with the `workload.spiffe.io: true` metadata, and prints one JSON
object of what it got. `--authority` sets the HTTP/2 :authority it sends (by default C-core
sends the percent-encoded socket path; grpc-java sends the raw path, which
`--authority /run/x.sock` reproduces). A failed call prints its gRPC status and exits 1.
"""

import argparse
import importlib
import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc


def stubs(proto):
    out = tempfile.mkdtemp()
    well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = [
        "protoc",
        f"-I{os.path.dirname(os.path.abspath(proto))}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        os.path.abspath(proto),
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed on " + proto)
    sys.path.insert(0, out)
    return importlib.import_module("workload_pb2"), importlib.import_module("workload_pb2_grpc")


def first(stream):
    for message in stream:
        stream.cancel()
        return message
    raise RuntimeError("the stream ended without a message")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--proto", required=True)
    ap.add_argument("--authority")
    ap.add_argument("--audience", default="sts.example")
    a = ap.parse_args()
    pb, rpc = stubs(a.proto)
    options = [("grpc.default_authority", a.authority)] if a.authority else []
    channel = grpc.insecure_channel("unix:" + a.socket, options=options)
    stub = rpc.SpiffeWorkloadAPIStub(channel)
    md = [("workload.spiffe.io", "true")]
    try:
        x509 = first(stub.FetchX509SVID(pb.X509SVIDRequest(), metadata=md, timeout=10))
        bundles = first(stub.FetchX509Bundles(pb.X509BundlesRequest(), metadata=md, timeout=10))
        jwt = stub.FetchJWTSVID(pb.JWTSVIDRequest(audience=[a.audience]), metadata=md, timeout=10)
        jwt_bundles = first(stub.FetchJWTBundles(pb.JWTBundlesRequest(), metadata=md, timeout=10))
        token = jwt.svids[0].svid
        valid = stub.ValidateJWTSVID(
            pb.ValidateJWTSVIDRequest(audience=a.audience, svid=token), metadata=md, timeout=10
        )
    except grpc.RpcError as e:
        print(json.dumps({"error": str(e.code()), "details": e.details()}))
        sys.exit(1)
    print(
        json.dumps(
            {
                "x509_spiffe_id": x509.svids[0].spiffe_id,
                "x509_chain_bytes": len(x509.svids[0].x509_svid),
                "x509_key_bytes": len(x509.svids[0].x509_svid_key),
                "x509_bundles": sorted(bundles.bundles.keys()),
                "jwt_spiffe_id": jwt.svids[0].spiffe_id,
                "jwt_bundles": sorted(jwt_bundles.bundles.keys()),
                "validated_spiffe_id": valid.spiffe_id,
                "validated_claims": sorted(valid.claims.fields.keys()),
            }
        )
    )


if __name__ == "__main__":
    main()
