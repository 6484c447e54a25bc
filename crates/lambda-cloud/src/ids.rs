//! Identifiers and names of Lambda Cloud resources, one type each so they cannot be mixed up.

string_id! {
    /// The unique identifier of an instance, e.g. `0920582c7ff041399e34823a0be62549`.
    pub struct InstanceId;
}
string_id! {
    /// The name of an instance type, e.g. `gpu_1x_a10`.
    pub struct InstanceTypeName;
}
string_id! {
    /// The unique identifier of a stored SSH key.
    pub struct SshKeyId;
}
string_id! {
    /// The unique identifier of a filesystem.
    pub struct FilesystemId;
}
string_id! {
    /// The unique identifier of a firewall ruleset (`global` for the global one).
    pub struct FirewallRulesetId;
}
string_id! {
    /// The unique identifier of a machine image.
    pub struct ImageId;
}
string_id! {
    /// The unique identifier of a fabric partition.
    pub struct FabricPartitionId;
}
string_id! {
    /// The unique identifier of a support ticket.
    pub struct TicketId;
}
string_id! {
    /// The unique identifier of a support ticket attachment.
    pub struct AttachmentId;
}
string_id! {
    /// An opaque token that fetches the next page of a paged listing.
    pub struct PageToken;
}
