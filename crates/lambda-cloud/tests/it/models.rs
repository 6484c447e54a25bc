//! Property tests: models survive a JSON round trip, open enums keep every value, and the
//! validation rules agree with the spec's patterns.

use lambda_cloud::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "[ -~]{0,24}"
}

fn region() -> impl Strategy<Value = Region> {
    (
        prop_oneof![
            proptest::sample::select(RegionName::KNOWN.to_vec()),
            "[a-z]{2,8}-[a-z]{3,8}-[0-9]".prop_map(RegionName::from),
        ],
        text(),
    )
        .prop_map(|(name, description)| Region { name, description })
}

fn status() -> impl Strategy<Value = InstanceStatus> {
    prop_oneof![
        proptest::sample::select(InstanceStatus::KNOWN.to_vec()),
        "[a-z]{1,12}".prop_map(InstanceStatus::from),
    ]
}

fn instance_type() -> impl Strategy<Value = InstanceType> {
    (
        "gpu_[0-9]x_[a-z0-9]{2,6}",
        text(),
        text(),
        any::<u32>(),
        any::<[u32; 4]>(),
    )
        .prop_map(
            |(
                name,
                description,
                gpu_description,
                price,
                [vcpus, memory_gib, storage_gib, gpus],
            )| InstanceType {
                name: name.into(),
                description,
                gpu_description,
                price_cents_per_hour: price,
                specs: InstanceTypeSpecs {
                    vcpus,
                    memory_gib,
                    storage_gib,
                    gpus,
                },
            },
        )
}

fn details() -> impl Strategy<Value = InstanceActionAvailabilityDetails> {
    prop_oneof![
        Just(InstanceActionAvailabilityDetails::available()),
        (
            proptest::sample::select(InstanceActionUnavailableCode::KNOWN.to_vec()),
            text()
        )
            .prop_map(|(code, why)| InstanceActionAvailabilityDetails::blocked(code, why)),
    ]
}

fn tags() -> impl Strategy<Value = Vec<TagEntry>> {
    vec(
        (text(), text()).prop_map(|(key, value)| TagEntry { key, value }),
        0..4,
    )
}

prop_compose! {
    fn instance()(
        id in "[0-9a-f]{32}",
        name in option::of(text()),
        ip in option::of("[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}"),
        status in status(),
        keys in vec(text(), 0..3),
        filesystems in vec(text(), 0..3),
        region in region(),
        instance_type in instance_type(),
        hostname in option::of(text()),
        token in option::of(text()),
        actions in [details(), details(), details(), details(), details()],
        tags in tags(),
    ) -> Instance {
        let [migrate, rebuild, restart, cold_reboot, terminate] = actions;
        Instance {
            id: id.into(),
            name,
            ip,
            private_ip: None,
            status,
            ssh_key_names: keys,
            file_system_names: filesystems,
            file_system_mounts: None,
            region,
            instance_type,
            hostname,
            jupyter_token: token.clone().map(Redacted::from),
            jupyter_url: token.map(|t| Redacted::new(format!("https://jupyter.example/?token={t}"))),
            actions: InstanceActionAvailability { migrate, rebuild, restart, cold_reboot, terminate },
            tags,
            firewall_rulesets: Vec::new(),
        }
    }
}

fn valid_tag_key() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9:-]{1,54}"
}

prop_compose! {
    fn launch_request()(
        instance_type in "gpu_[0-9]x_[a-z0-9]{2,6}",
        region in region(),
        key in "[a-zA-Z0-9 -]{1,64}",
        name in option::of("[ -~]{0,64}"),
        hostname in option::of("[a-z0-9][a-z0-9-]{0,62}"),
        user_data in option::of("[ -~\n]{0,200}"),
        tags in vec((valid_tag_key(), "[ -~]{0,128}"), 0..4),
        family in option::of("[a-z0-9-]{1,20}"),
    ) -> LaunchInstanceRequest {
        let mut request = LaunchInstanceRequest::new(instance_type, region.name, key);
        request.name = name;
        request.hostname = hostname;
        request.user_data = user_data.map(Redacted::from);
        request.tags = tags.into_iter().map(|(k, v)| RequestedTagEntry::new(k, v)).collect();
        request.image = family.map(ImageSpecification::family);
        request
    }
}

fn firewall_rule() -> impl Strategy<Value = FirewallRule> {
    (
        proptest::sample::select(NetworkProtocol::KNOWN.to_vec()),
        option::of(any::<[u16; 2]>()),
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,2})?",
        "[ -~]{0,130}",
    )
        .prop_map(
            |(protocol, port_range, source_network, description)| FirewallRule {
                protocol,
                port_range,
                source_network,
                description,
            },
        )
}

fn round_trips<T>(value: &T) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&json).unwrap();
    prop_assert_eq!(&back, value);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn instances_round_trip(instance in instance()) {
        round_trips(&instance)?;
    }

    #[test]
    fn launch_requests_round_trip_and_generated_valid_ones_validate(request in launch_request()) {
        round_trips(&request)?;
        prop_assert_eq!(request.validate(), Ok(()));
    }

    #[test]
    fn tag_keys_with_an_uppercase_letter_are_refused(key in "[a-z][a-z0-9]{0,20}[A-Z][a-z0-9]{0,20}") {
        let mut request = LaunchInstanceRequest::new("gpu_1x_a10", "us-east-1", "k");
        request.tags.push(RequestedTagEntry::new(key, "v"));
        let error = request.validate().unwrap_err();
        prop_assert_eq!(error.field, "tags[0].key");
    }

    #[test]
    fn firewall_rules_round_trip_and_checking_never_panics(rule in firewall_rule()) {
        round_trips(&rule)?;
        let _ = rule.check("rule");
    }

    #[test]
    fn open_enums_keep_every_value(value in "[ -~]{0,30}") {
        let v = value.as_str();
        assert_eq!(InstanceStatus::from(v).as_str(), v);
        assert_eq!(RegionName::from(v).as_str(), v);
        assert_eq!(ImageArchitecture::from(v).as_str(), v);
        assert_eq!(NetworkProtocol::from(v).as_str(), v);
        assert_eq!(InstanceActionUnavailableCode::from(v).as_str(), v);
        assert_eq!(ErrorCode::parse(v).as_str().as_ref(), v);
        round_trips(&InstanceStatus::from(value.as_str()))?;
        round_trips(&ErrorCode::parse(&value))?;
    }

    #[test]
    fn instance_types_round_trip(types in vec((instance_type(), vec(region(), 0..3)), 0..5)) {
        let types = InstanceTypes(
            types
                .into_iter()
                .map(|(instance_type, regions)| {
                    (instance_type.name.clone(), InstanceTypesItem { instance_type, regions_with_capacity_available: regions })
                })
                .collect(),
        );
        round_trips(&types)?;
        let by_price = types.by_price();
        prop_assert!(by_price.windows(2).all(|w| w[0].instance_type.price_cents_per_hour <= w[1].instance_type.price_cents_per_hour));
    }
}
