resource "fipd_host" "compute1" {
  name = "compute-1"
}

# The agent's token, to install as /etc/fip-agent/token on the host.
output "compute1_agent_token" {
  value     = fipd_host.compute1.token
  sensitive = true
}
