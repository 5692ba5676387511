//! The one bridge from a flow's configuration to its producer's: every setting the
//! producer takes from `agent.toml` is set here, so none is left at a default the
//! config did not choose.

use crate::config::{AgentConfig, FlowConfig};
use crate::kinesis::limits;
use crate::producer::ProducerConfig;

/// The producer a flow runs.
pub fn for_flow(flow: &FlowConfig, agent: &AgentConfig) -> ProducerConfig {
    ProducerConfig {
        stream: flow.destination.name().to_owned(),
        name: flow.name.clone(),
        credentials: crate::aws::credentials_source(&flow.service),
        retry_base: flow.service.retry_base,
        retry_max: flow.service.retry_max,
        aggregation: flow.aggregation,
        throttle: flow.throttle,
        max_in_flight_bytes: agent.max_in_flight_bytes,
        max_concurrent_requests: ProducerConfig::DEFAULT_MAX_CONCURRENT_REQUESTS,
        // The flow's records are data plus a key of up to 256 bytes; the stream's own
        // limit, when lower, is applied by the producer and the flow sizes to it.
        max_record_bytes: (flow.max_record_bytes + limits::MAX_PARTITION_KEY_CHARS)
            .min(limits::MAX_RECORD_BYTES_UPPER_BOUND),
        body_format: flow.service.body_format,
        max_request_bytes: if flow.destination.is_firehose() {
            limits::FIREHOSE_BATCH_MAX_BYTES
        } else {
            limits::PUT_RECORDS_MAX_BYTES
        },
        dead_letter_path: Some(
            agent
                .state_dir
                .join("dead-letter")
                .join(format!("{}.jsonl", flow.name)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    fn config(agent: &str, flow: &str) -> Config {
        let text = format!(
            "[agent]\nstate_dir = \"/tmp/state\"\n{agent}\n[[flows]]\nname = \"web\"\nstream = \"logs\"\ninclude = [\"/var/log/*.log\"]\n{flow}\n"
        );
        Config::parse(&text, "test").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_setting_comes_from_the_flow_and_the_agent() {
        let config = config(
            "max_in_flight_bytes = 3145728\n[kinesis]\nretry_base_ms = 250\nretry_max_ms = 5000",
            "max_record_bytes = 2097152\n[flows.aggregation]\nlinger_ms = 40\n[flows.throttle]\nshare = 0.5",
        );
        let flow = &config.flows[0];
        let producer = for_flow(flow, &config.agent);
        assert_eq!(producer.stream, "logs");
        assert_eq!(producer.name, "web");
        assert_eq!(producer.max_in_flight_bytes, 3_145_728);
        assert_eq!(producer.retry_base, Duration::from_millis(250));
        assert_eq!(producer.retry_max, Duration::from_secs(5));
        assert_eq!(producer.aggregation.linger, Duration::from_millis(40));
        assert_eq!(producer.throttle.share, 0.5);
        // A flow that allows 2 MiB records gets a producer that sends them.
        assert_eq!(producer.max_record_bytes, 2_097_152 + 256);
        assert_eq!(
            producer.dead_letter_path.as_deref(),
            Some(std::path::Path::new("/tmp/state/dead-letter/web.jsonl"))
        );
    }

    #[test]
    fn defaults_agree_with_the_producers_own() {
        let config = config("", "");
        let producer = for_flow(&config.flows[0], &config.agent);
        let own = ProducerConfig::new("logs");
        assert_eq!(producer.max_in_flight_bytes, own.max_in_flight_bytes);
        assert_eq!(producer.max_record_bytes, own.max_record_bytes);
        assert_eq!(producer.aggregation, own.aggregation);
        assert_eq!(producer.throttle, own.throttle);
    }
}
