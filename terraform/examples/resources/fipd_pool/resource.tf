resource "fipd_pool" "public" {
  network_id  = fipd_network.link1.id
  cidr        = "2001:db8:100::/64"
  description = "public floating IPs"

  # Optional: allocate only from these ranges (default: the whole prefix) ...
  ranges = [
    { first = "2001:db8:100::1:0", last = "2001:db8:100::1:ffff" },
  ]
  # ... and never these addresses.
  reserved = ["2001:db8:100::1:1"]
}
