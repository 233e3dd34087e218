"""ClientAgent.fetch reads the client agent's ``fetch`` reply (no network needed)."""

from redlab.agent import ClientAgent


def test_fetch_groups_download_times_by_server_and_keeps_failures_apart():
    agent = ClientAgent.__new__(ClientAgent)
    asked = []

    def ask(line, timeout=30):
        asked.append((line, timeout))
        return ["web1:0.512", "web2:1.250", "web1:0.498", "?:0.100", "ERROR:TimeoutError"]
    agent.ask = ask
    assert agent.fetch(5, "/big.bin") == {"web1": [0.512, 0.498], "web2": [1.25], "?": [0.1],
                                          "ERROR:TimeoutError": [None]}
    assert asked == [("fetch 5 /big.bin", 120)]
