//! The Hello API (`proto/hello/v1/hello.proto`, package `hello.v1`).

/// Generated messages, client and server for `hello.v1`.
pub mod hello {
    pub mod v1 {
        tonic::include_proto!("hello.v1");
    }
}

pub use hello::v1::{
    HelloReply, HelloRequest,
    greeter_client::GreeterClient,
    greeter_server::{Greeter, GreeterServer},
};

/// The encoded `FileDescriptorSet` of the Hello API, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hello_descriptor");

/// The fully qualified gRPC service name.
pub const GREETER_SERVICE: &str = "hello.v1.Greeter";

/// The methods of `hello.v1.Greeter`, as routes name them.
pub const METHODS: [&str; 2] = ["SayHello", "SayHelloAgain"];
