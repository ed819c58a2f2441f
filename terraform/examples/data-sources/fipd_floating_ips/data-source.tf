# Floating IPs of one network that are in ERROR.
data "fipd_floating_ips" "broken" {
  network_id = data.fipd_network.link1.id
  status     = "ERROR"
}

output "broken" {
  value = { for f in data.fipd_floating_ips.broken.floating_ips : f.address => f.status_detail }
}

# Everything placed on one host (host is filtered by the provider).
data "fipd_floating_ips" "on_compute1" {
  host = "compute-1"
}
