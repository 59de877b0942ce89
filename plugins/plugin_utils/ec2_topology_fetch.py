# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""AWS side of the ``chainops.validator.ec2_topology`` inventory: one DescribeInstances scan per region.

What this does, and why:

* Uses botocore (boto3's engine) directly: clients, paginators and the ``standard`` retry mode
  come from it; importing boto3 on top would only add start-up time. botocore itself is imported
  on first use, so a cached inventory run does not pay for it.
* Regions run concurrently in a bounded thread pool: EC2 throttling buckets are per account and
  region, so one request stream per region is safe; within a region pages are sequential.
* ``MaxResults=1000`` (the largest page) and server-side filters keep the call count at the
  minimum; running instances only unless asked otherwise. Nothing else is called, except
  ``sts:AssumeRole`` once when ``assume_role_arn`` is set.
* DescribeInstances responses are big XML documents and botocore's generic parser turns every
  element of every instance into Python objects (timestamps included). The parser below keeps
  botocore's parsing for errors and for the members it keeps, but only visits the members the
  inventory uses, and leaves timestamps as the ISO strings AWS sent (which also makes the result
  JSON-cacheable as is). If a response surprises it, it falls back to botocore's own parser and
  trims afterwards, so the output is the same either way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
from concurrent.futures import ThreadPoolExecutor

# Raw DescribeInstances members the inventory reads; anything else is skipped while parsing.
DEFAULT_INSTANCE_KEYS = frozenset((
    "InstanceId", "InstanceType", "ImageId", "State", "LaunchTime", "Architecture", "Platform", "KeyName",
    "VpcId", "SubnetId", "PrivateIpAddress", "PublicIpAddress", "PrivateDnsName", "PublicDnsName",
    "Ipv6Address", "Placement", "SecurityGroups", "IamInstanceProfile", "InstanceLifecycle", "Tags",
))

# Errors that mean "not allowed here" (missing permission, region not enabled for the account).
PERMISSION_ERRORS = frozenset(("UnauthorizedOperation", "AuthFailure", "OptInRequired", "AccessDenied"))

# Extra botocore event handlers registered on every client: (event name, handler) pairs.
# An extension point for tests and tooling (e.g. counting requests); empty in normal use.
EVENT_HOOKS = []

_bc = None  # the lazily imported botocore pieces, see _botocore()
_bc_lock = threading.Lock()


class FetchError(Exception):
    """Any failure the inventory should report as a parser error."""


def filters_to_boto(filters):
    """``{'tag:Role': ['validator', 'sentry']}`` -> boto3 ``Filters`` list."""
    result = []
    for name, values in (filters or {}).items():
        if not isinstance(values, (list, tuple)):
            values = [values]
        result.append({"Name": str(name), "Values": [_filter_text(v) for v in values]})
    return result


def _filter_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _identity(value):
    return value


def trim_instance(instance, keys, reservation):
    """Keep only ``keys`` of a botocore-parsed instance and attach its reservation's owner (account)."""
    trimmed = dict((k, instance[k]) for k in keys if k in instance)
    trimmed["OwnerId"] = reservation.get("OwnerId")
    return trimmed


class _Botocore:
    pass


def _botocore():
    """Import botocore and define the classes that subclass it, once."""
    global _bc  # pylint: disable=global-statement
    with _bc_lock:
        if _bc is None:
            try:
                import botocore.session
                from botocore import config, exceptions, parsers
            except ImportError as exc:
                raise FetchError("the ec2_topology inventory needs botocore (pip install boto3): %s" % exc)
            ns = _Botocore()
            ns.session = botocore.session
            ns.Config = config.Config
            ns.exc = exceptions
            ns.TrimmingEC2Parser = _make_parser_class(parsers.EC2QueryParser)
            ns.ParserFactory = _make_factory_class(parsers.ResponseParserFactory, ns.TrimmingEC2Parser)
            _bc = ns
    return _bc


def _make_parser_class(base):
    class TrimmingEC2Parser(base):
        """EC2 parser that builds only the requested Instance members of DescribeInstances results."""

        # Member tables per (shape, keys); model shapes are shared and immutable, so reuse is safe.
        _tables = {}

        def __init__(self, keys=DEFAULT_INSTANCE_KEYS, **kwargs):
            # Timestamps stay as sent: cheaper, and JSON-serialisable for the inventory cache.
            kwargs["timestamp_parser"] = _identity
            super(TrimmingEC2Parser, self).__init__(**kwargs)
            self._keys = frozenset(keys)

        def _do_parse(self, response, shape):
            if shape is None or shape.name != "DescribeInstancesResult":
                return super(TrimmingEC2Parser, self)._do_parse(response, shape)
            try:
                return self._fast_parse(response["body"], shape)
            except Exception:  # pylint: disable=broad-except
                # Unexpected layout: let botocore parse it in full, then trim to the same result.
                parsed = super(TrimmingEC2Parser, self)._do_parse(response, shape)
                for reservation in parsed.get("Reservations", ()):
                    reservation["Instances"] = [trim_instance(i, self._keys, reservation) for i in reservation.get("Instances", ())]
                return parsed

        def _table(self, shape):
            key = (id(shape), self._keys)
            table = self._tables.get(key)
            if table is None:
                instance = shape.members["Reservations"].member.members["Instances"].member
                table = {}
                for name, member in instance.members.items():
                    if name in self._keys:
                        table[member.serialization.get("name", name)] = (name, member, member.type_name)
                self._tables[key] = table
            return table

        def _fast_parse(self, body, shape):
            root = self._parse_xml_string_to_dom(body)
            tag = root.tag
            ns = tag[:tag.index("}") + 1] if tag.startswith("{") else ""
            table = self._table(shape)
            reservations = []
            parsed = {"Reservations": reservations}
            for child in root:
                ctag = child.tag[len(ns):]
                if ctag == "reservationSet":
                    for res_node in child:
                        reservations.append(self._reservation(res_node, ns, table))
                elif ctag == "nextToken":
                    if child.text:
                        parsed["NextToken"] = child.text
                elif ctag == "requestId":
                    parsed["ResponseMetadata"] = {"RequestId": child.text}
            return parsed

        def _reservation(self, node, ns, table):
            reservation = {}
            instances_node = None
            strip = len(ns)
            for child in node:
                ctag = child.tag[strip:]
                if ctag == "reservationId":
                    reservation["ReservationId"] = child.text or ""
                elif ctag == "ownerId":
                    reservation["OwnerId"] = child.text or ""
                elif ctag == "instancesSet":
                    instances_node = child
            instances = []
            if instances_node is not None:
                owner = reservation.get("OwnerId")
                for item in instances_node:
                    instance = {}
                    for field in item:
                        entry = table.get(field.tag[strip:])
                        if entry is None:
                            continue
                        name, member, type_name = entry
                        if type_name == "string" or type_name == "timestamp":
                            instance[name] = field.text or ""
                        elif type_name == "boolean":
                            instance[name] = field.text == "true"
                        elif name == "Tags":
                            instance[name] = _tags(field, ns)
                        else:
                            instance[name] = self._parse_shape(member, field)
                    instance["OwnerId"] = owner
                    instances.append(instance)
            reservation["Instances"] = instances
            return reservation

    return TrimmingEC2Parser


def _tags(node, ns):
    # Hot path: every instance has several tags, and botocore's generic list/structure walk is slow.
    key_tag, value_tag = ns + "key", ns + "value"
    tags = []
    for item in node:
        tag = {}
        for field in item:
            if field.tag == key_tag:
                tag["Key"] = field.text or ""
            elif field.tag == value_tag:
                tag["Value"] = field.text or ""
        tags.append(tag)
    return tags


def _make_factory_class(base, parser_class):
    class TrimmingParserFactory(base):
        """Session component: the trimming parser for EC2, botocore's own parsers for the rest (STS)."""

        def __init__(self, keys):
            super(TrimmingParserFactory, self).__init__()
            self._keys = keys

        def create_parser(self, protocol_name):
            if protocol_name == "ec2":
                return parser_class(keys=self._keys, **self._defaults)
            return super(TrimmingParserFactory, self).create_parser(protocol_name)

    return TrimmingParserFactory


def make_parser(keys=DEFAULT_INSTANCE_KEYS):
    """A trimming EC2 parser, for tests that compare it with botocore's own."""
    return _botocore().TrimmingEC2Parser(keys=keys)


def default_region(profile=None):
    """Region from the profile / AWS_REGION / AWS_DEFAULT_REGION, or None. No network access."""
    bc = _botocore()
    try:
        return bc.session.Session(profile=profile or None).get_config_variable("region")
    except bc.exc.ProfileNotFound as exc:
        raise FetchError(str(exc))


class _CallCounter:
    """Counts HTTP attempts (retries included) made by our clients, for -vvv output."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}

    def __call__(self, **kwargs):
        name = kwargs.get("event_name", "").split(".")[-1]
        with self.lock:
            self.calls[name] = self.calls.get(name, 0) + 1
        # Returning None lets the request go out (a value here would short-circuit it).


def _register(client, service, counter):
    client.meta.events.register("before-send.%s" % service, counter)
    for event, handler in EVENT_HOOKS:
        client.meta.events.register(event, handler)


def describe_instances(regions, filters=None, instance_states=("running",), profile=None, access_key=None,
                       secret_key=None, session_token=None, assume_role_arn=None, role_session_name=None,
                       endpoint_url=None, keys=DEFAULT_INSTANCE_KEYS, page_size=1000, max_attempts=5,
                       max_concurrency=4, connect_timeout=10, read_timeout=120, strict_permissions=True):
    """Describe the instances of every region, concurrently.

    :returns: ``(instances_by_region, warnings, calls)``: a dict region -> list of trimmed instance
        dicts (raw API member names, regions in the order given), warning strings (regions skipped
        when ``strict_permissions`` is off) and a dict API operation -> HTTP attempts made.
    :raises FetchError: on any AWS or credential failure that is not skipped.
    """
    bc = _botocore()
    boto_filters = filters_to_boto(filters)
    if instance_states and not any(f["Name"] == "instance-state-name" for f in boto_filters):
        boto_filters.append({"Name": "instance-state-name", "Values": list(instance_states)})
    keys = frozenset(keys) | frozenset(("InstanceId",))

    config = bc.Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra="chainops-ec2-topology",
    )
    counter = _CallCounter()
    try:
        session = bc.session.Session(profile=profile or None)
        session.register_component("response_parser_factory", bc.ParserFactory(keys))
        creds = {}
        if access_key or secret_key or session_token:
            creds = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key, "aws_session_token": session_token}
        if assume_role_arn:
            creds = _assume_role(bc, session, creds, assume_role_arn, role_session_name, regions[0], endpoint_url, config, counter)
        # Clients are created here, serially: botocore sessions are not thread-safe, clients are.
        clients = []
        for region in regions:
            client = session.create_client("ec2", region_name=region, endpoint_url=endpoint_url or None, config=config, **creds)
            _register(client, "ec2", counter)
            clients.append((region, client))
        unknown = sorted(keys - set(clients[0][1].meta.service_model.shape_for("Instance").members)) if clients else []
        if unknown:
            raise FetchError("extra_instance_keys: %s not DescribeInstances instance member(s)" % ", ".join(unknown))
    except bc.exc.ProfileNotFound as exc:
        raise FetchError(str(exc))
    except (bc.exc.BotoCoreError, bc.exc.ClientError) as exc:
        raise FetchError("could not set up AWS clients: %s" % exc)

    def one_region(client):
        instances = []
        paginator = client.get_paginator("describe_instances")
        for page in paginator.paginate(Filters=boto_filters, PaginationConfig={"PageSize": page_size}):
            for reservation in page.get("Reservations", ()):
                instances.extend(reservation["Instances"])
        return instances

    results = {}
    warnings = []
    workers = max(1, min(int(max_concurrency), len(clients)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [(region, pool.submit(one_region, client)) for region, client in clients]
        for region, future in futures:
            try:
                results[region] = future.result()
            except bc.exc.NoCredentialsError:
                raise FetchError(
                    "no AWS credentials found: set profile, access_key/secret_key or assume_role_arn, or the usual "
                    "AWS_* environment variables")
            except bc.exc.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in PERMISSION_ERRORS and not strict_permissions:
                    warnings.append("skipping region %s: %s" % (region, exc))
                    results[region] = []
                    continue
                raise FetchError("DescribeInstances failed in %s: %s" % (region, exc))
            except bc.exc.BotoCoreError as exc:
                raise FetchError("DescribeInstances failed in %s: %s" % (region, exc))
    return dict((region, results[region]) for region in regions), warnings, dict(counter.calls)


def _assume_role(bc, session, creds, role_arn, session_name, region, endpoint_url, config, counter):
    sts = session.create_client("sts", region_name=region, endpoint_url=endpoint_url or None, config=config, **creds)
    _register(sts, "sts", counter)
    try:
        response = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name or "chainops-ec2-topology")
    except bc.exc.NoCredentialsError:
        raise FetchError("no AWS credentials found to assume role %s" % role_arn)
    except (bc.exc.BotoCoreError, bc.exc.ClientError) as exc:
        raise FetchError("could not assume role %s: %s" % (role_arn, exc))
    c = response["Credentials"]
    return {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"], "aws_session_token": c["SessionToken"]}
