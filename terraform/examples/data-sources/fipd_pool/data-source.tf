data "fipd_pool" "public" {
  cidr       = "2001:db8:100::/64"
  network_id = data.fipd_network.link1.id # optional: pools of two networks may share a prefix
}

output "public_addresses_left" {
  value = data.fipd_pool.public.available
}
