"""A gRPC peer we did not write: grpc-core (grpcio) as client and server of the Hello API.

The interop tests (apps/tests/interop.rs) start this program from the environment they make
(grpcio, grpcio-tools, grpcio-health-checking, grpcio-reflection at the versions of
requirements.txt), with the Hello API's Python modules generated from proto/ at set-up.

Every command prints one JSON document on stdout (the server: one line when it listens, one
when it has stopped), so that the tests assert counts and codes, not log text.
"""

import argparse
import collections
import json
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

import hello_pb2
import hello_pb2_grpc

METHODS = ("SayHello", "SayHelloAgain")


def emit(doc):
    print(json.dumps(doc, sort_keys=True), flush=True)


def code_name(err):
    return err.code().name if isinstance(err, grpc.RpcError) else "EXCEPTION"


# ---- server ---------------------------------------------------------------------------------


class Greeter(hello_pb2_grpc.GreeterServicer):
    """Answers as hello-server does, and counts the metadata it was sent."""

    def __init__(self, name, version, addr):
        self.name, self.version, self.addr = name, version, addr
        self.lock = threading.Lock()
        self.calls = collections.Counter()
        self.metadata = collections.Counter()
        self.authorities = collections.Counter()

    def _answer(self, method, request, context):
        with self.lock:
            self.calls[method] += 1
            for key, value in context.invocation_metadata():
                if key.startswith("x-"):
                    self.metadata[f"{key}={value}"] += 1
            # grpc-core puts :authority in its own place, not in the metadata
        return hello_pb2.HelloReply(
            message=f"{self.name}: Hello {request.client_id}_{request.counter}",
            server_id=self.name,
            server_version=self.version,
            server_addr=self.addr,
        )

    def SayHello(self, request, context):
        return self._answer("SayHello", request, context)

    def SayHelloAgain(self, request, context):
        return self._answer("SayHelloAgain", request, context)


def serve(args):
    options = []
    if args.max_age_ms:
        options.append(("grpc.max_connection_age_ms", args.max_age_ms))
        options.append(("grpc.max_connection_age_grace_ms", args.grace_ms))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=options)
    greeter = Greeter(args.name, args.version, args.addr)
    hello_pb2_grpc.add_GreeterServicer_to_server(greeter, server)
    port = server.add_insecure_port(args.addr)
    if port == 0:
        sys.exit(f"cannot listen on {args.addr}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    emit({"listening": args.addr, "name": args.name})
    stop.wait()
    server.stop(grace=args.grace_ms / 1000).wait()
    with greeter.lock:
        emit({
            "stopped": args.name,
            "calls": dict(greeter.calls),
            "metadata": dict(greeter.metadata),
        })


# ---- client ---------------------------------------------------------------------------------


def channel(args):
    options = [("grpc.lb_policy_name", args.lb)]
    if args.authority:
        options.append(("grpc.default_authority", args.authority))
    return grpc.insecure_channel(args.target, options=options)


def call(args):
    """Calls in rounds of `concurrency` until `count` calls or `seconds` have passed; counts
    replies by server and failures by code."""
    by_server = collections.Counter()
    codes = collections.Counter()
    replies = []
    metadata = [tuple(kv.split("=", 1)) for kv in args.metadata]
    with channel(args) as ch:
        stub = hello_pb2_grpc.GreeterStub(ch)
        method = getattr(stub, args.method)
        deadline = time.monotonic() + args.seconds if args.seconds else None
        sent = 0
        while True:
            if deadline is None and sent >= args.count:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            n = args.concurrency if deadline else min(args.concurrency, args.count - sent)
            calls = [
                method.future(
                    hello_pb2.HelloRequest(client_id="grpcio", counter=sent + i),
                    timeout=args.rpc_timeout,
                    metadata=metadata,
                    wait_for_ready=args.wait_for_ready,
                )
                for i in range(n)
            ]
            sent += n
            for i, future in enumerate(calls):
                try:
                    reply = future.result()
                except grpc.RpcError as err:
                    codes[code_name(err)] += 1
                    continue
                codes["OK"] += 1
                by_server[reply.server_id] += 1
                if len(replies) < 3:
                    replies.append({
                        "message": reply.message,
                        "server_id": reply.server_id,
                        "server_version": reply.server_version,
                        "server_addr": reply.server_addr,
                    })
    emit({"sent": sent, "codes": dict(codes), "by_server": dict(by_server), "replies": replies})


def health_check(args):
    with channel(args) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=5)
            emit({"code": "OK", "status": health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)})
        except grpc.RpcError as err:
            emit({"code": code_name(err)})


def health_watch(args):
    """Prints one JSON line per status the Watch stream sends, then one when it ends."""
    with channel(args) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        try:
            for reply in stub.Watch(health_pb2.HealthCheckRequest(service=args.service)):
                emit({"status": health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)})
            emit({"ended": "OK"})
        except grpc.RpcError as err:
            emit({"ended": code_name(err)})


def reflect(args):
    """Lists the services and resolves the Hello file through reflection `version` (v1 and
    v1alpha have the same messages, so v1alpha's generated ones encode both)."""
    path = f"/grpc.reflection.{args.version}.ServerReflection/ServerReflectionInfo"
    with channel(args) as ch:
        info = ch.stream_stream(
            path,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="hello.v1.Greeter"),
        ]
        try:
            replies = list(info(iter(requests), timeout=5))
        except grpc.RpcError as err:
            emit({"code": code_name(err)})
            return
    services = sorted(s.name for s in replies[0].list_services_response.service)
    files = []
    for raw in replies[1].file_descriptor_response.file_descriptor_proto:
        from google.protobuf import descriptor_pb2

        file = descriptor_pb2.FileDescriptorProto.FromString(raw)
        files.append({"name": file.name, "services": [s.name for s in file.service],
                      "methods": [m.name for s in file.service for m in s.method]})
    emit({"code": "OK", "services": services, "files": files})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve")
    s.add_argument("--addr", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--version", default="v1")
    s.add_argument("--max-age-ms", type=int, default=0)
    s.add_argument("--grace-ms", type=int, default=5000)
    s.set_defaults(run=serve)

    def client(name, run):
        c = sub.add_parser(name)
        c.add_argument("--target", required=True)
        c.add_argument("--authority", default="")
        c.add_argument("--lb", default="pick_first", choices=["pick_first", "round_robin"])
        c.set_defaults(run=run)
        return c

    c = client("call", call)
    c.add_argument("--method", default="SayHello", choices=METHODS)
    c.add_argument("--count", type=int, default=10)
    c.add_argument("--seconds", type=float, default=0)
    c.add_argument("--concurrency", type=int, default=10)
    c.add_argument("--rpc-timeout", type=float, default=10)
    c.add_argument("--metadata", action="append", default=[])
    c.add_argument("--wait-for-ready", action="store_true")
    h = client("health-check", health_check)
    h.add_argument("--service", default="")
    w = client("health-watch", health_watch)
    w.add_argument("--service", default="")
    r = client("reflect", reflect)
    r.add_argument("--version", required=True, choices=["v1", "v1alpha"])

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
