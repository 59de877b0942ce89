# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# GPLv3+ rather than the collection's Apache-2.0: this plugin subclasses ansible-core's GPLv3+ inventory
# plugin classes. The AWS and topology logic it uses (module_utils) stays Apache-2.0.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: ec2_topology
short_description: EC2 inventory that knows validators, sentries and their clusters
version_added: 0.2.0
description:
  - Builds an inventory of EC2 instances tagged with a chain, a network, a topology role and a cluster,
    and tells every host which validator it protects or which sentries protect it.
  - A cluster is one signing validator (or a non-signing standby) plus its sentries. Each cluster gets an
    overlay CIDR and every member a stable overlay address for the WireGuard network between them.
  - Queries the configured regions concurrently with one paginated C(DescribeInstances) scan each
    (1000 instances per page, server-side filters, running instances only by default). Nothing else is
    called, except C(sts:AssumeRole) once when O(assume_role_arn) is set. With caching on, a warm run
    makes no API call at all; grouping, host variables, O(compose) and topology checks are recomputed
    from the cached raw results on every run.
  - The configuration file name must end with C(ec2_topology.yml) or C(ec2_topology.yaml).
  - "Groups: one per role (O(role_groups), for example C(validators) and C(sentries)), and one per chain,
    network, cluster, fleet, availability zone and region (O(group_prefixes)). Group names only contain letters,
    digits and underscores; other characters become underscores."
  - "Host variables: C(ansible_host) (see O(ansible_host)), C(ec2) (instance facts),
    C(ec2_tags) (all tags; not C(tags), which is a reserved name in Ansible), C(topology_role),
    C(topology_chain), C(topology_network), C(topology_cluster), C(topology_availability_zone), C(topology_fleet),
    C(topology_dns_name), C(topology_p2p_port) and C(topology_p2p_protocol) (nodes of a fleet with a P2P port
    each) and, for members of a cluster,
    C(topology_validator), C(topology_standbys), C(topology_sentries), C(topology_overlay_address),
    C(topology_overlay_cidr) and C(topology_overlay_persisted)."
  - "Topology problems are reported as warnings, or fail the inventory when O(strict=true): a cluster with
    no validator, two signing validators, fewer sentries than O(min_sentries), sentries all in one availability
    zone (always only a warning), an unknown role value, overlapping or too small overlay CIDRs and duplicate
    overlay addresses."
author:
  - chainops.validator maintainers (!UNKNOWN)
requirements:
  - python >= 3.8
  - botocore >= 1.34.0 (installed with boto3)
extends_documentation_fragment:
  - inventory_cache
  - constructed
notes:
  - Credentials are looked up like the AWS CLI does (explicit keys, then O(profile) or E(AWS_PROFILE), then the
    E(AWS_ACCESS_KEY_ID) family of environment variables, then shared files and instance roles).
  - E(AWS_ENDPOINT_URL) and E(AWS_ENDPOINT_URL_EC2) are honoured by botocore when O(endpoint_url) is not set.
  - Only C(DescribeInstances) needs to be allowed (plus C(sts:AssumeRole) on the role with O(assume_role_arn)).
  - Overlay addresses are stable across runs when they are persisted in the O(tag_schema.overlay_address) tag;
    hosts without one get the lowest free address of their cluster, so persist them (the WireGuard role does)
    before adding or removing hosts if they must never move.
options:
  plugin:
    description: Marks this file as a configuration of this plugin.
    type: str
    required: true
    choices: ['chainops.validator.ec2_topology']
  regions:
    description:
      - Regions to query, concurrently.
      - When empty, the region of O(profile) or of E(AWS_REGION)/E(AWS_DEFAULT_REGION) is used. When there is
        none the inventory fails; it never scans every region on its own.
    type: list
    elements: str
    default: []
  profile:
    description: Named AWS profile. E(AWS_PROFILE) is used when not set.
    type: str
    aliases: [aws_profile, boto_profile]
  access_key:
    description: AWS access key ID. Takes precedence over O(profile).
    type: str
    aliases: [aws_access_key_id, aws_access_key, ec2_access_key]
  secret_key:
    description: AWS secret access key, with O(access_key).
    type: str
    aliases: [aws_secret_access_key, aws_secret_key, ec2_secret_key]
  session_token:
    description: AWS session token for temporary O(access_key)/O(secret_key) credentials.
    type: str
    aliases: [aws_session_token, security_token]
  assume_role_arn:
    description:
      - ARN of an IAM role to assume with C(sts:AssumeRole) before querying EC2, for example in another account.
      - Only called when the inventory has to query AWS (not on a cache hit).
    type: str
    aliases: [iam_role_arn]
  role_session_name:
    description: Session name used with O(assume_role_arn).
    type: str
    default: chainops-ec2-topology
  endpoint_url:
    description: URL of the EC2 (and STS) API to use instead of AWS's, for example a local stand-in such as moto.
    type: str
    aliases: [aws_endpoint_url, endpoint]
  filters:
    description:
      - Server-side C(DescribeInstances) filters, a mapping of filter name to a value or a list of values, for
        example C(tag:Chain) or C(vpc-id). See U(https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html).
      - An C(instance-state-name) filter here replaces O(instance_states).
    type: dict
    default: {}
  instance_states:
    description:
      - Instance states to include, applied server-side. Stopped and terminated instances are left out by default.
      - Set to an empty list to include every state.
    type: list
    elements: str
    default: [running]
  include_filters:
    description:
      - Keep only instances matching at least one of these filter mappings (all keys of one mapping must match).
      - Evaluated locally on what O(filters) returned, so they never cost an API call (unlike
        M(amazon.aws.aws_ec2) where every entry is another scan of every region).
      - "Supported filter names: C(tag:<key>), C(tag-key), C(tag-value), C(instance-id), C(instance-type),
        C(image-id), C(instance-state-name), C(availability-zone), C(region), C(vpc-id), C(subnet-id),
        C(key-name), C(architecture), C(platform), C(instance-lifecycle), C(owner-id), C(private-ip-address),
        C(ip-address), C(private-dns-name), C(dns-name), C(ipv6-address), C(group-id), C(group-name).
        Values may use the C(*) and C(?) wildcards."
    type: list
    elements: dict
    default: []
  exclude_filters:
    description:
      - Drop instances matching at least one of these filter mappings. Same names and matching as O(include_filters).
    type: list
    elements: dict
    default: []
  strict_permissions:
    description:
      - When V(false), a region where C(DescribeInstances) is denied or not enabled is skipped with a warning
        instead of failing the inventory.
    type: bool
    default: true
  max_concurrency:
    description: Largest number of regions queried at the same time.
    type: int
    default: 4
  retry_max_attempts:
    description:
      - Total attempts per API call (botocore C(standard) retry mode, exponential backoff with jitter), so throttling
        (C(RequestLimitExceeded)) and transient errors are retried.
    type: int
    default: 5
  page_size:
    description: C(MaxResults) of each C(DescribeInstances) page, between 5 and 1000. The largest page means the fewest calls.
    type: int
    default: 1000
  connect_timeout:
    description: Seconds to wait for a connection to the API.
    type: int
    default: 10
  read_timeout:
    description: Seconds to wait for an API response.
    type: int
    default: 120
  hostnames:
    description:
      - Inventory host name sources in order of preference; the first one with a value is used.
      - "Sources: C(tag:<key>), C(instance-id), C(private-dns-name), C(public-dns-name) (or C(dns-name)),
        C(private-ip-address), C(public-ip-address) (or C(ip-address)), C(ipv6-address)."
      - Instances for which no source has a value are left out with a warning.
    type: list
    elements: str
    default: ['tag:Name', 'instance-id']
  duplicate_hostnames:
    description:
      - What to do when several instances get the same host name.
      - V(suffix) keeps the name on the oldest instance (launch time, then instance ID) and names the others
        C(<name>_<instance-id>), so an existing host never changes name when a duplicate appears.
      - V(first) keeps only the oldest instance and leaves the others out.
      - V(error) fails the inventory.
      - A warning lists every duplicate in the first two cases.
    type: str
    choices: [suffix, first, error]
    default: suffix
  ansible_host:
    description:
      - Sources for the C(ansible_host) variable in order of preference, with the same names as O(hostnames).
      - The private IP address by default; use for example V([public-ip-address, private-ip-address]) or
        V([public-dns-name]) to connect from outside the VPC.
      - An empty list leaves C(ansible_host) unset, so Ansible connects to the inventory host name.
    type: list
    elements: str
    default: [private-ip-address]
  tag_schema:
    description:
      - Names of the tags the topology is read from. Only the keys given replace the defaults.
    type: dict
    default: {}
    suboptions:
      chain:
        description: Tag holding the chain name, for example C(cosmoshub).
        type: str
        default: Chain
      network:
        description: Tag holding the network name, for example C(mainnet).
        type: str
        default: Network
      role:
        description:
          - Tag holding the topology role, one of V(validator), V(sentry), V(standby), V(public), V(rpc),
            V(seed), V(bootnode) (case-insensitive, see O(role_map) for other spellings).
        type: str
        default: Role
      cluster:
        description: Tag holding the cluster name; validators, standbys and sentries of one cluster share it.
        type: str
        default: Cluster
      overlay_address:
        description:
          - Optional tag holding the persisted overlay address of the host, V(10.99.3.2) or V(10.99.3.2/24)
            (the prefix then also gives the cluster's overlay CIDR).
        type: str
        default: OverlayAddress
      fleet:
        description: Tag holding the fleet name of a standalone node (provision's C(fleets)).
        type: str
        default: Fleet
      p2p_port:
        description: Tag holding a fleet node's own P2P port, V(8777/tcp) (fleets with C(unique_p2p_port)).
        type: str
        default: P2PPort
      dns_name:
        description: Tag holding the node's DNS name.
        type: str
        default: DnsName
  role_map:
    description:
      - "Extra role tag values and the role they mean, for fleets tagged before this plugin, for example
        V({sentry-node: sentry, signer: validator}). Keys are compared case-insensitively."
    type: dict
    default: {}
  role_groups:
    description:
      - Group name for each role. Only the keys given replace the defaults; a null value creates no group.
      - Defaults are V(validators), V(sentries), V(standbys), V(public_nodes), V(rpc_nodes), V(seeds) and V(bootnodes).
    type: dict
    default: {}
  group_prefixes:
    description:
      - Prefix of the per-value groups for each of V(chain), V(network), V(cluster), V(fleet), V(availability_zone)
        and V(region). Only the keys given replace the defaults; a null value creates no group of that kind.
      - Defaults are V(chain_), V(network_), V(cluster_), V(fleet_), V(az_) and V(region_), giving for example
        C(chain_cosmoshub), C(cluster_cosmos_a), C(fleet_pk_testnet) and C(az_us_east_1a).
    type: dict
    default: {}
  min_sentries:
    description: A cluster with fewer sentries than this is reported.
    type: int
    default: 2
  overlay_cidrs:
    description: Overlay CIDR per cluster name. Takes precedence over O(overlay_pool).
    type: dict
    default: {}
  overlay_pool:
    description:
      - CIDR the overlay subnet of a cluster is taken from when O(overlay_cidrs) and persisted addresses do not give it.
      - A cluster with a persisted address keeps the pool subnet holding it; others get a slot derived from their name.
    type: str
    default: 10.99.0.0/16
  overlay_prefix:
    description: Prefix length of the per-cluster subnets taken from O(overlay_pool).
    type: int
    default: 24
  extra_instance_keys:
    description:
      - Further C(DescribeInstances) instance members to copy into the C(ec2) variable, by their API name, for example
        V(BlockDeviceMappings) or V(MetadataOptions). Their value is parsed by botocore and kept as the API returns it
        (keys inside it are not converted); the C(ec2) key is the snake_case form of the name.
      - Every member costs parsing time and cache space, so only list what is used.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
# inventories/aws/ec2_topology.yml - the whole fleet of two regions, default tag schema
plugin: chainops.validator.ec2_topology
regions:
  - us-east-1
  - eu-west-1

---
# Only one chain, from a dedicated account, cached for 10 minutes between runs
plugin: chainops.validator.ec2_topology
regions: [us-east-1]
assume_role_arn: arn:aws:iam::111122223333:role/validator-inventory
filters:
  tag:Chain: cosmoshub
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-inventory
cache_timeout: 600

---
# A fleet tagged with other names, reached over public addresses, strict topology checks
plugin: chainops.validator.ec2_topology
profile: validators
regions: [ap-southeast-1]
tag_schema:
  role: node-role
  cluster: validator-set
role_map:
  sentry-node: sentry
hostnames: [tag:Name, private-dns-name]
ansible_host: [public-ip-address, private-ip-address]
min_sentries: 3
strict: true
exclude_filters:
  - tag:Maintenance: "true"

---
# Extra variables and groups on top of the topology ones
plugin: chainops.validator.ec2_topology
regions: [us-east-1]
overlay_cidrs:
  cosmos-a: 10.42.0.0/28
compose:
  node_chain_id: topology_chain ~ '-' ~ topology_network
  ansible_user: "'admin' if ec2.platform != 'windows' else 'Administrator'"
groups:
  arm_nodes: ec2.architecture == 'arm64'
keyed_groups:
  - key: ec2.instance_type
    prefix: type
"""

import fnmatch
import hashlib
import json
import re

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.chainops.validator.plugins.plugin_utils import topology as topo_model

# Bump when the cached structure changes, so old cache entries are ignored instead of misread.
CACHE_FORMAT = 1

DEFAULT_TAG_SCHEMA = {
    "chain": "Chain",
    "network": "Network",
    "role": "Role",
    "cluster": "Cluster",
    "overlay_address": "OverlayAddress",
    "fleet": "Fleet",
    "p2p_port": "P2PPort",
    "dns_name": "DnsName",
}
DEFAULT_ROLE_GROUPS = {
    "validator": "validators",
    "sentry": "sentries",
    "standby": "standbys",
    "public": "public_nodes",
    "rpc": "rpc_nodes",
    "seed": "seeds",
    "bootnode": "bootnodes",
}
DEFAULT_GROUP_PREFIXES = {
    "chain": "chain_",
    "network": "network_",
    "cluster": "cluster_",
    "fleet": "fleet_",
    "availability_zone": "az_",
    "region": "region_",
}

# hostnames / ansible_host sources -> raw DescribeInstances member.
ATTRIBUTE_SOURCES = {
    "instance-id": "InstanceId",
    "private-dns-name": "PrivateDnsName",
    "public-dns-name": "PublicDnsName",
    "dns-name": "PublicDnsName",
    "private-ip-address": "PrivateIpAddress",
    "public-ip-address": "PublicIpAddress",
    "ip-address": "PublicIpAddress",
    "ipv6-address": "Ipv6Address",
}

_INVALID_GROUP_CHARS = re.compile(r"[^A-Za-z0-9_]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_TEMPLATED_OPTIONS = ("access_key", "secret_key", "session_token", "profile", "assume_role_arn", "endpoint_url")


def _tags_of(instance):
    return dict((t.get("Key"), t.get("Value", "")) for t in instance.get("Tags") or ())


def _group_name(name):
    return _INVALID_GROUP_CHARS.sub("_", name)


def _snake(name):
    return _CAMEL.sub("_", name).lower()


# Local evaluation of include/exclude filters: filter name -> function(instance, tags, region) -> values.
def _attr(key):
    return lambda i, tags, region: [i.get(key)]


def _nested(key, sub):
    return lambda i, tags, region: [(i.get(key) or {}).get(sub)]


def _tag_getter(key):
    return lambda i, tags, region: [tags.get(key)]


def _groups(sub):
    return lambda i, tags, region: [g.get(sub) for g in i.get("SecurityGroups") or ()]


_FILTER_GETTERS = {
    "instance-id": _attr("InstanceId"),
    "instance-type": _attr("InstanceType"),
    "image-id": _attr("ImageId"),
    "instance-state-name": _nested("State", "Name"),
    "availability-zone": _nested("Placement", "AvailabilityZone"),
    "region": lambda i, tags, region: [region],
    "vpc-id": _attr("VpcId"),
    "subnet-id": _attr("SubnetId"),
    "key-name": _attr("KeyName"),
    "architecture": _attr("Architecture"),
    "platform": _attr("Platform"),
    "instance-lifecycle": _attr("InstanceLifecycle"),
    "owner-id": _attr("OwnerId"),
    "private-ip-address": _attr("PrivateIpAddress"),
    "ip-address": _attr("PublicIpAddress"),
    "private-dns-name": _attr("PrivateDnsName"),
    "dns-name": _attr("PublicDnsName"),
    "ipv6-address": _attr("Ipv6Address"),
    "group-id": _groups("GroupId"),
    "group-name": _groups("GroupName"),
    "tag-key": lambda i, tags, region: list(tags),
    "tag-value": lambda i, tags, region: list(tags.values()),
}


def _compile_value(value):
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if "*" not in text and "?" not in text:
        return lambda v: v == text
    # AWS wildcards are only * and ?; fnmatch's [] classes must stay literal.
    pattern = re.compile(fnmatch.translate(text.replace("[", "\x00")).replace("\x00", r"\["))
    return lambda v: v is not None and pattern.match(v) is not None


def compile_filters(filter_list, option):
    """[{name: value(s)}] -> list of [(getter, [matchers])], one inner list per mapping (AND), outer OR."""
    compiled = []
    for entry in filter_list or ():
        if not isinstance(entry, dict):
            raise AnsibleParserError("%s: every entry must be a mapping of filter name to value(s), got %r" % (option, entry))
        conditions = []
        for name, values in entry.items():
            name = str(name)
            if name.startswith("tag:"):
                getter = _tag_getter(name[4:])
            elif name in _FILTER_GETTERS:
                getter = _FILTER_GETTERS[name]
            else:
                raise AnsibleParserError(
                    "%s: filter '%s' is not supported locally; supported: tag:<key>, %s (the server-side 'filters' "
                    "option accepts every EC2 filter)" % (option, name, ", ".join(sorted(_FILTER_GETTERS))))
            if not isinstance(values, (list, tuple)):
                values = [values]
            conditions.append((getter, [_compile_value(v) for v in values]))
        compiled.append(conditions)
    return compiled


def _matches(compiled, instance, tags, region):
    for conditions in compiled:
        ok = True
        for getter, matchers in conditions:
            found = getter(instance, tags, region)
            if not any(m(v) for v in found if v is not None for m in matchers):
                ok = False
                break
        if ok:
            return True
    return False


def _merge_option(given, defaults, option):
    """Dict options where only the keys given replace the defaults; unknown keys are an error."""
    unknown = sorted(set(given or {}) - set(defaults))
    if unknown:
        raise AnsibleParserError("%s: unknown key(s) %s; known: %s" % (option, ", ".join(unknown), ", ".join(sorted(defaults))))
    return dict(defaults, **(given or {}))


def _source_getter(source, option):
    source = str(source)
    if source.startswith("tag:") and len(source) > 4:
        key = source[4:]
        return lambda i, tags: tags.get(key) or None
    if source in ATTRIBUTE_SOURCES:
        key = ATTRIBUTE_SOURCES[source]
        return lambda i, tags: i.get(key) or None
    raise AnsibleParserError(
        "%s: unknown source '%s'; use tag:<key> or one of %s" % (option, source, ", ".join(sorted(ATTRIBUTE_SOURCES))))


def _ec2_facts(instance, region, extra_keys):
    """Instance facts for the ``ec2`` variable: explicit key mapping, nothing converted generically."""
    placement = instance.get("Placement") or {}
    profile = instance.get("IamInstanceProfile") or {}
    facts = {
        "instance_id": instance.get("InstanceId"),
        "instance_type": instance.get("InstanceType"),
        "image_id": instance.get("ImageId"),
        "state": (instance.get("State") or {}).get("Name"),
        "launch_time": instance.get("LaunchTime"),
        "architecture": instance.get("Architecture"),
        "platform": instance.get("Platform") or None,
        "lifecycle": instance.get("InstanceLifecycle") or "on-demand",
        "key_name": instance.get("KeyName") or None,
        "vpc_id": instance.get("VpcId"),
        "subnet_id": instance.get("SubnetId"),
        "private_ip_address": instance.get("PrivateIpAddress") or None,
        "public_ip_address": instance.get("PublicIpAddress") or None,
        "private_dns_name": instance.get("PrivateDnsName") or None,
        "public_dns_name": instance.get("PublicDnsName") or None,
        "ipv6_address": instance.get("Ipv6Address") or None,
        "availability_zone": placement.get("AvailabilityZone"),
        "region": region,
        "security_groups": [{"group_id": g.get("GroupId"), "group_name": g.get("GroupName")} for g in instance.get("SecurityGroups") or ()],
        "iam_instance_profile_arn": profile.get("Arn"),
        "owner_id": instance.get("OwnerId"),
    }
    for key in extra_keys:
        facts[_snake(key)] = instance.get(key)
    return facts


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "chainops.validator.ec2_topology"

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(("ec2_topology.yml", "ec2_topology.yaml"))

    def _read_config_data(self, path):
        """Ansible ignores keys a plugin does not declare: a misspelt option (``stict: true``) would be
        dropped without a word, so unknown keys are refused, all of them named."""
        config = super(InventoryModule, self)._read_config_data(path)
        unknown = sorted(set(config) - set(self._options) - {"plugin"})
        if unknown:
            raise AnsibleParserError("%s: unknown option(s) %s; the plugin's options are: %s"
                                     % (path, ", ".join(map(str, unknown)), ", ".join(sorted(self._options))))
        return config

    def _opt(self, name):
        value = self.get_option(name)
        if name in _TEMPLATED_OPTIONS and isinstance(value, str) and "{{" in value:
            value = self.templar.template(value)
        return value

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)

        # Option problems fail before any API call.
        self._hostname_getters = [_source_getter(s, "hostnames") for s in self.get_option("hostnames")]
        self._ansible_host_getters = [_source_getter(s, "ansible_host") for s in self.get_option("ansible_host")]
        self._include = compile_filters(self.get_option("include_filters"), "include_filters")
        self._exclude = compile_filters(self.get_option("exclude_filters"), "exclude_filters")
        page_size = self.get_option("page_size")
        if not 5 <= page_size <= 1000:
            raise AnsibleParserError("page_size must be between 5 and 1000, got %d" % page_size)
        self._extra_keys = [str(k) for k in self.get_option("extra_instance_keys")]
        self._schema = _merge_option(self.get_option("tag_schema"), DEFAULT_TAG_SCHEMA, "tag_schema")
        self._role_groups = _merge_option(self.get_option("role_groups"), DEFAULT_ROLE_GROUPS, "role_groups")
        self._prefixes = _merge_option(self.get_option("group_prefixes"), DEFAULT_GROUP_PREFIXES, "group_prefixes")
        self._role_map = {}
        for value, role in (self.get_option("role_map") or {}).items():
            role = topo_model.normalize_role(role)
            if role not in topo_model.ROLES:
                raise AnsibleParserError("role_map: '%s' maps to '%s', which is not one of %s" % (value, role, ", ".join(topo_model.ROLES)))
            self._role_map[topo_model.normalize_role(value)] = role

        from ansible_collections.chainops.validator.plugins.plugin_utils import ec2_topology_fetch as fetch

        regions = [self.templar.template(r) if "{{" in str(r) else str(r) for r in self.get_option("regions")]
        profile = self._opt("profile")
        if not regions:
            try:
                region = fetch.default_region(profile)
            except fetch.FetchError as exc:
                raise AnsibleParserError("ec2_topology: %s" % to_native(exc))
            if not region:
                raise AnsibleParserError(
                    "ec2_topology: no region to query: set 'regions', or a region in the profile or in "
                    "AWS_REGION/AWS_DEFAULT_REGION (this inventory never scans every region implicitly)")
            regions = [region]
        regions = list(dict.fromkeys(regions))

        query = {
            "regions": regions,
            "filters": fetch.filters_to_boto(self.get_option("filters")),
            "instance_states": list(self.get_option("instance_states")),
            "keys": sorted(set(fetch.DEFAULT_INSTANCE_KEYS) | set(self._extra_keys)),
            "endpoint_url": self._opt("endpoint_url"),
            "profile": profile,
            "assume_role_arn": self._opt("assume_role_arn"),
            "access_key": self._opt("access_key"),
        }
        # The cache entry remembers what it answers, so changing regions/filters/account never serves stale hosts.
        fingerprint = hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode("utf-8")).hexdigest()

        use_cache = bool(self.get_option("cache"))
        cache_key = self.get_cache_key(path)
        by_region = None
        if use_cache and cache:
            try:
                cached = self._cache[cache_key]
            except KeyError:
                cached = None
            if isinstance(cached, dict) and cached.get("format") == CACHE_FORMAT and cached.get("query") == fingerprint:
                by_region = cached["regions"]
                self.display.vvv("ec2_topology: using cached EC2 results, no API call")

        if by_region is None:
            try:
                by_region, warnings, calls = fetch.describe_instances(
                    regions,
                    filters=self.get_option("filters"),
                    instance_states=query["instance_states"],
                    profile=profile,
                    access_key=query["access_key"],
                    secret_key=self._opt("secret_key"),
                    session_token=self._opt("session_token"),
                    assume_role_arn=query["assume_role_arn"],
                    role_session_name=self.get_option("role_session_name"),
                    endpoint_url=query["endpoint_url"],
                    keys=query["keys"],
                    page_size=page_size,
                    max_attempts=self.get_option("retry_max_attempts"),
                    max_concurrency=self.get_option("max_concurrency"),
                    connect_timeout=self.get_option("connect_timeout"),
                    read_timeout=self.get_option("read_timeout"),
                    strict_permissions=self.get_option("strict_permissions"),
                )
            except fetch.FetchError as exc:
                raise AnsibleParserError("ec2_topology: %s" % to_native(exc))
            for warning in warnings:
                self.display.warning("ec2_topology: %s" % warning)
            self.display.vvv("ec2_topology: API calls made: %s" % json.dumps(calls, sort_keys=True))
            if use_cache:
                self._cache[cache_key] = {"format": CACHE_FORMAT, "query": fingerprint, "regions": by_region}

        self._populate(by_region)

    # ------------------------------------------------------------------ population

    def _select(self, by_region):
        """Apply local filters and pick host names. Returns [(name, instance, tags, region)]."""
        include, exclude = self._include, self._exclude
        getters = self._hostname_getters
        named = {}
        nameless = []
        for region, instances in by_region.items():
            for instance in instances:
                tags = _tags_of(instance)
                if include and not _matches(include, instance, tags, region):
                    continue
                if exclude and _matches(exclude, instance, tags, region):
                    continue
                name = None
                for getter in getters:
                    name = getter(instance, tags)
                    if name:
                        break
                if not name:
                    nameless.append(instance.get("InstanceId"))
                    continue
                named.setdefault(name, []).append((instance, tags, region))
        if nameless:
            self.display.warning(
                "ec2_topology: %d instance(s) have no value for any of hostnames %s and were left out: %s"
                % (len(nameless), self.get_option("hostnames"), ", ".join(sorted(nameless)[:20])))

        mode = self.get_option("duplicate_hostnames")
        selected = []
        duplicates = []
        for name, entries in named.items():
            if len(entries) == 1:
                selected.append((name,) + entries[0])
                continue
            # Oldest first: it keeps the plain name, so a new duplicate never renames an existing host.
            entries.sort(key=lambda e: (e[0].get("LaunchTime") or "", e[0].get("InstanceId") or ""))
            ids = [e[0].get("InstanceId") for e in entries]
            duplicates.append("%s (%s)" % (name, ", ".join(ids)))
            if mode == "error":
                continue
            selected.append((name,) + entries[0])
            if mode == "suffix":
                for entry in entries[1:]:
                    selected.append(("%s_%s" % (name, entry[0].get("InstanceId")),) + entry)
        if duplicates:
            if mode == "error":
                raise AnsibleParserError("ec2_topology: duplicate host names: %s" % "; ".join(sorted(duplicates)))
            self.display.warning(
                "ec2_topology: several instances share a host name (%s): %s"
                % ("the oldest keeps it, others get _<instance-id>" if mode == "suffix" else "only the oldest is kept",
                   "; ".join(sorted(duplicates))))
        selected.sort(key=lambda s: s[0])
        return selected

    def _populate(self, by_region):
        schema, role_groups, prefixes, role_map = self._schema, self._role_groups, self._prefixes, self._role_map
        extra_keys = self._extra_keys
        ah_getters = self._ansible_host_getters
        t_chain, t_network, t_role = schema["chain"], schema["network"], schema["role"]
        t_cluster, t_address = schema["cluster"], schema["overlay_address"]

        selected = self._select(by_region)

        # Pass 1: topology input, then the model decides clusters and addresses for everyone at once.
        members = []
        for name, instance, tags, region in selected:
            role = topo_model.normalize_role(tags.get(t_role))
            role = role_map.get(role, role)
            members.append({
                "name": name,
                "role": role,
                "cluster": tags.get(t_cluster) or None,
                "availability_zone": (instance.get("Placement") or {}).get("AvailabilityZone"),
                "overlay_address": tags.get(t_address) or None,
                "chain": tags.get(t_chain) or None,
                "network": tags.get(t_network) or None,
            })
        topology = topo_model.build_topology(
            members,
            cluster_cidrs=self.get_option("overlay_cidrs"),
            pool=self.get_option("overlay_pool"),
            cluster_prefix=self.get_option("overlay_prefix"),
            min_sentries=self.get_option("min_sentries"),
        )
        strict = self.get_option("strict")
        for issue in topology.issues:
            if issue.severity == topo_model.WARNING or not strict:
                self.display.warning("ec2_topology: %s" % issue.message)
        if strict and topology.errors:
            raise AnsibleParserError(
                "ec2_topology: topology errors (strict mode):\n- %s" % "\n- ".join(i.message for i in topology.errors))

        # Pass 2: hosts, variables, groups.
        inventory = self.inventory
        known_groups = set()

        def add_to(group, host):
            if group not in known_groups:
                inventory.add_group(group)
                known_groups.add(group)
            inventory.add_child(group, host)

        compose = self.get_option("compose")
        composed_groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")
        constructed = bool(compose or composed_groups or keyed_groups)
        p_chain, p_network, p_cluster = prefixes.get("chain"), prefixes.get("network"), prefixes.get("cluster")
        p_az, p_region = prefixes.get("availability_zone"), prefixes.get("region")
        clusters = topology.clusters
        host_cluster = topology.host_cluster
        roles = topology.roles

        for (name, instance, tags, region), member in zip(selected, members):
            facts = _ec2_facts(instance, region, extra_keys)
            az = facts["availability_zone"]
            role = roles.get(name)
            hostvars = {
                "ec2": facts,
                "ec2_tags": tags,
                "topology_role": role,
                "topology_chain": member["chain"],
                "topology_network": member["network"],
                "topology_cluster": member["cluster"],
                "topology_availability_zone": az,
                # Fleets (provision's standalone public nodes): the fleet, the node's DNS name and, for
                # fleets with a P2P port per node, this node's ("8777/tcp" -> 8777, "tcp").
                "topology_fleet": tags.get(schema["fleet"]) or None,
                "topology_dns_name": tags.get(schema["dns_name"]) or None,
            }
            p2p_port = tags.get(schema["p2p_port"]) or ""
            port, _sep, protocol = p2p_port.partition("/")
            hostvars["topology_p2p_port"] = int(port) if port.isdigit() else None
            hostvars["topology_p2p_protocol"] = (protocol or "tcp") if port.isdigit() else None
            for getter in ah_getters:
                address = getter(instance, tags)
                if address:
                    hostvars["ansible_host"] = address
                    break
            cluster_name = host_cluster.get(name)
            if cluster_name is not None:
                cluster = clusters[cluster_name]
                hostvars["topology_validator"] = cluster.hub
                hostvars["topology_standbys"] = list(cluster.standbys)
                hostvars["topology_sentries"] = list(cluster.sentries)
                hostvars["topology_overlay_address"] = cluster.addresses.get(name)
                hostvars["topology_overlay_cidr"] = str(cluster.cidr) if cluster.cidr is not None else None
                hostvars["topology_overlay_persisted"] = name in cluster.persisted

            inventory.add_host(name)
            for key, value in hostvars.items():
                inventory.set_variable(name, key, value)

            if role is not None and role_groups.get(role):
                add_to(_group_name(role_groups[role]), name)
            if p_chain and member["chain"]:
                add_to(_group_name(p_chain + member["chain"]), name)
            if p_network and member["network"]:
                add_to(_group_name(p_network + member["network"]), name)
            if p_cluster and member["cluster"]:
                add_to(_group_name(p_cluster + member["cluster"]), name)
            if prefixes.get("fleet") and hostvars["topology_fleet"]:
                add_to(_group_name(prefixes["fleet"] + hostvars["topology_fleet"]), name)
            if p_az and az:
                add_to(_group_name(p_az + az), name)
            if p_region:
                add_to(_group_name(p_region + region), name)

            if constructed:
                self._construct(name, hostvars, compose, composed_groups, keyed_groups, strict)

    def _construct(self, name, hostvars, compose, composed_groups, keyed_groups, strict):
        # Composed values are visible to groups/keyed_groups of the same host, like the constructed plugin.
        if compose:
            for varname, expression in compose.items():
                try:
                    value = self._compose(expression, hostvars)
                except Exception as exc:  # pylint: disable=broad-except
                    if strict:
                        raise AnsibleParserError("Could not set %s for host %s: %s" % (varname, name, to_native(exc)))
                    continue
                self.inventory.set_variable(name, varname, value)
                hostvars[varname] = value
        if composed_groups:
            self._add_host_to_composed_groups(composed_groups, hostvars, name, strict=strict, fetch_hostvars=False)
        if keyed_groups:
            self._add_host_to_keyed_groups(keyed_groups, hostvars, name, strict=strict, fetch_hostvars=False)
