//! Robustness: the loader never panics on garbled input, and its errors stay on one line.

use mesh::gateway;

use super::support::{canary, gateway_file, services};

/// A small deterministic generator (xorshift), so that failures reproduce.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SPICE: &[&str] = &[
    "-",
    ":",
    " ",
    "\n",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "&a",
    "*a",
    "!!str ",
    "?",
    "|",
    ">",
    "#",
    "---\n",
    "~",
    "0",
    "-1",
    "99999999999",
    "RegularExpression",
    "(",
    "Service",
    "\"\"",
    "\t",
    "ü",
    "\u{0}",
];

fn mutate(text: &str, noise: &mut Noise) -> String {
    let mut out = text.to_owned();
    for _ in 0..=noise.below(4) {
        let mut at = noise.below(out.len() + 1);
        while !out.is_char_boundary(at) {
            at -= 1;
        }
        match noise.below(5) {
            0 => {
                let mut end = (at + 1 + noise.below(12)).min(out.len());
                while !out.is_char_boundary(end) {
                    end += 1;
                }
                out.replace_range(at..end, "");
            }
            1 | 2 => out.insert_str(at, SPICE[noise.below(SPICE.len())]),
            3 => out.truncate(at),
            _ => {
                let lines: Vec<&str> = out.lines().collect();
                if lines.len() > 1 {
                    let (a, b) = (noise.below(lines.len()), noise.below(lines.len()));
                    let mut lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
                    lines.swap(a, b);
                    out = lines.join("\n");
                }
            }
        }
    }
    out
}

#[test]
fn parse_never_panics_on_garbled_input_and_its_errors_stay_on_one_line() {
    let valid = [
        std::fs::read_to_string(gateway_file("httproute.yaml")).unwrap(),
        std::fs::read_to_string(gateway_file("grpcroute.yaml")).unwrap(),
        canary(concat!(
            "  - matches: [{method: {type: RegularExpression, service: 'a.*'}, headers: [{name: a, value: b}]}]\n",
            "    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}]\n",
            "    backendRefs: [{name: server-v1, port: 50051, weight: 3}]\n",
        )),
    ];
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..3000 {
        let text = mutate(&valid[round % valid.len()], &mut noise);
        match gateway::parse(&text, "fuzz.yaml") {
            Ok(objects) => {
                accepted += 1;
                let _ = gateway::route_table(&objects, &services());
            }
            Err(error) => {
                refused += 1;
                let line = error.to_string();
                assert!(!line.contains('\n'), "not one line for {text:?}: {line}");
            }
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn parse_never_panics_on_arbitrary_bytes() {
    let mut noise = Noise(42);
    for _ in 0..2000 {
        let len = noise.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| noise.next() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = gateway::parse(&text, "random.yaml");
    }
}
