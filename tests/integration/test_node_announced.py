"""node role, identity.announced: after a start the node's own account of its ENR and listen addresses is
published and persisted, and refused when its peer ID is not the one derived from the key.

The role's task file runs on the controller against a loopback server answering GET /debug/v1/info
the way nwaku and go-waku do ({enrUri, listenAddresses}); Waku itself cannot run here."""
from __future__ import annotations

import json

import pytest
from json_server import JsonServer  # tests/testlib, put on sys.path by tests/conftest.py
from playbook_runner import ansible_playbook, recap

PEER_ID = "16Uiu2HAmE1zdG92om3Y49m3ZeT5T3jAZCZ1w7JGWi93NWGRbjmW1"
OTHER_ID = "16Uiu2HAmQE7FXQc6iZHdBzYfw3qCSDa9dLc1wsBJKoP4aZvztq2d"
ENR = ("enr:-KG4QOtcP9X1FbIMOe17QNMKqDxCpm14jcX5tiOE4_TyMrFqbmhPZHK_ZPG2Gxb1GE2xdtodOfx9-cgvNtxnRyHEmC0ghGV0aDKQ9aX9QgAAAAD_____"
       "_____4JpZIJ2NIJpcIQDE8KdiXNlY3AyNTZrMaEDhpehBDbZjM_L9ek699Y7vhUJ-eAdMyQW_Fil522Y0fODdGNwgiMog3VkcIIjKA")

PLAYBOOK = """
- name: Publish what the started node announces
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The role's step, as service.yml runs it after a start
      ansible.builtin.include_role:
        name: chainops.validator.node
        tasks_from: identity_announced.yml
      vars:
        __node_announced_file: "{{ announced_file }}"
        _node_profile:
          node_key: {path: /var/lib/gowaku/nodekey.env}
          identity:
            announced: {url: "{{ info_url }}", enr: enrUri, multiaddrs: listenAddresses}
        node_p2p_identity: {id: "%s"}
        node_name: gowaku
    - name: Show the fact
      ansible.builtin.debug:
        var: node_p2p_announced
""" % PEER_ID


@pytest.fixture
def info_server():
    answer = {}
    with JsonServer(lambda _request: answer) as server:
        yield answer, server.url + "/debug/v1/info"


def run(tmp_path, url):
    (tmp_path / "announced.yml").write_text(PLAYBOOK)
    return ansible_playbook(tmp_path / "announced.yml", "-i", "localhost,", "-c", "local",
                            "-e", "info_url=%s announced_file=%s" % (url, tmp_path / "node-announced.json"))


def test_the_announced_enr_and_addresses_are_published_once(tmp_path, info_server):
    answer, url = info_server
    addresses = ["/ip4/203.0.113.7/tcp/60000/p2p/" + PEER_ID, "/ip4/203.0.113.7/tcp/60001/ws/p2p/" + PEER_ID]
    answer.update(enrUri=ENR, listenAddresses=addresses)
    first = run(tmp_path, url)
    assert first.returncode == 0, first.stdout[-3000:]
    persisted = json.loads((tmp_path / "node-announced.json").read_text())
    assert persisted == {"peer_id": PEER_ID, "enr": ENR, "multiaddrs": addresses}
    assert (tmp_path / "node-announced.json").stat().st_mode & 0o777 == 0o644
    assert recap(first.stdout)["localhost"]["changed"] == 1
    second = run(tmp_path, url)
    assert recap(second.stdout)["localhost"]["changed"] == 0, second.stdout[-3000:]


@pytest.mark.parametrize("addresses", [
    ["/ip4/203.0.113.7/tcp/60000/p2p/" + OTHER_ID],
    ["/ip4/203.0.113.7/tcp/60000"],
    [],
])
def test_a_node_announcing_another_peer_id_or_none_is_refused(tmp_path, info_server, addresses):
    answer, url = info_server
    answer.update(enrUri=ENR, listenAddresses=addresses)
    result = run(tmp_path, url)
    assert result.returncode != 0
    assert "announces peer IDs %s" % ([OTHER_ID] if addresses and "/p2p/" in addresses[0] else []) in result.stdout, result.stdout[-2000:]
    assert "derives '%s'" % PEER_ID in result.stdout
    assert not (tmp_path / "node-announced.json").exists()
