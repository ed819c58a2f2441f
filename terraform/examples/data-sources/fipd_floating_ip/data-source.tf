data "fipd_floating_ip" "www" {
  address = "2001:db8:100::1:80"
}

output "www_status" {
  value = "${data.fipd_floating_ip.www.status} on ${coalesce(data.fipd_floating_ip.www.host, "no host")}"
}
