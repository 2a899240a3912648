//! What the twin DNS answers: hickory-server's request handler over a [`Records`] table.

use std::net::IpAddr;

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA};
use hickory_server::proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::{debug, trace};

use super::Records;

/// The TTL of every answer: 0, so that no resolver caches it.
const TTL: u32 = 0;

/// The size of a UDP response when the request has no EDNS record (RFC 1035 §4.2.1).
const UDP_PAYLOAD_WITHOUT_EDNS: u16 = 512;

/// The largest UDP response this server sends, whatever the client advertises.
const UDP_PAYLOAD_MAX: u16 = 4096;

/// Answers each query from a [`Records`] table, read afresh for every query.
#[derive(Clone)]
pub(super) struct Answerer {
    records: Records,
}

impl Answerer {
    pub(super) fn new(records: Records) -> Self {
        Self { records }
    }

    fn outcome(&self, request: &Request) -> Outcome {
        // RFC 6891 §6.1.3: this server only knows EDNS version 0.
        if request.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
            return Outcome::Error(ResponseCode::BADVERS);
        }
        if request.metadata.op_code != OpCode::Query {
            return Outcome::Error(ResponseCode::NotImp);
        }
        let [query] = request.queries.queries() else {
            return Outcome::Error(ResponseCode::FormErr);
        };
        if query.query_class() != DNSClass::IN {
            return Outcome::Error(ResponseCode::Refused);
        }
        // The owner name is the question's, as it was sent: a resolver that randomizes the case
        // of its questions (0x20) checks that it comes back unchanged.
        let name = query.original().name();
        let Some(addrs) = self.records.get_name(name) else {
            return Outcome::NoSuchName;
        };
        let query_type = query.query_type();
        let records = addrs.into_iter().filter_map(|addr| {
            let data = match (query_type, addr) {
                (RecordType::A, IpAddr::V4(v4)) => RData::A(A(v4)),
                (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
                _ => return None,
            };
            Some(Record::from_rdata(name.clone(), TTL, data))
        });
        Outcome::Records(records.collect())
    }
}

/// What a query gets.
enum Outcome {
    /// An error found before the name is looked up: no records, not authoritative.
    Error(ResponseCode),
    /// The name is unknown: NXDOMAIN.
    NoSuchName,
    /// The records of a known name of the asked type; none is NODATA.
    Records(Vec<Record>),
}

#[async_trait::async_trait]
impl RequestHandler for Answerer {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        // A request with EDNS gets EDNS back. hickory-server sends a UDP response within the
        // payload size of the response's EDNS record, so that is the size this server takes
        // from the client (at least 512 bytes), up to its own maximum.
        let edns = request.edns.as_ref().map(|_| {
            let mut edns = Edns::new();
            edns.set_max_payload(request.max_payload().min(UDP_PAYLOAD_MAX));
            edns
        });
        let response = || {
            let mut builder = MessageResponseBuilder::from_message_request(request);
            if let Some(edns) = &edns {
                builder.edns(edns);
            }
            builder
        };
        // Copies the id, the opcode, RD and CD; leaves AA, TC and RA unset.
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let sent = match self.outcome(request) {
            Outcome::Error(code) => {
                metadata.response_code = code;
                response_handle
                    .send_response(response().build_no_records(metadata))
                    .await
            }
            Outcome::NoSuchName => {
                metadata.authoritative = true;
                metadata.response_code = ResponseCode::NXDomain;
                response_handle
                    .send_response(response().build_no_records(metadata))
                    .await
            }
            Outcome::Records(records) => {
                metadata.authoritative = true;
                // hickory-server would send as many records as fit, with TC set; this server sends
                // none with TC, so that a client that does not retry over TCP sees no answer
                // rather than part of one. The limit is the one hickory-server encodes within.
                let limit = match request.protocol() {
                    Protocol::Udp => edns
                        .as_ref()
                        .map_or(UDP_PAYLOAD_WITHOUT_EDNS, Edns::max_payload),
                    _ => u16::MAX,
                };
                let mut scratch = Vec::new();
                let mut encoder = BinEncoder::new(&mut scratch);
                encoder.set_max_size(limit);
                let fits = response()
                    .build(metadata, &records, [], [], [])
                    .destructive_emit(&mut encoder)
                    .is_ok_and(|info| !info.truncation);
                if fits {
                    response_handle
                        .send_response(response().build(metadata, &records, [], [], []))
                        .await
                } else {
                    trace!(id = metadata.id, limit, "dns response truncated");
                    metadata.truncation = true;
                    response_handle
                        .send_response(response().build_no_records(metadata))
                        .await
                }
            }
        };
        match sent {
            Ok(info) => {
                trace!(
                    peer = %request.src(),
                    protocol = %request.protocol(),
                    id = info.id,
                    question = ?request.queries.queries().first(),
                    response_code = %info.response_code,
                    answers = info.counts().answers,
                    "dns query answered"
                );
                info
            }
            Err(error) => {
                debug!(peer = %request.src(), %error, "cannot send a dns response");
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}
