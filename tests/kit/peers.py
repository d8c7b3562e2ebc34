"""A WebRTC peer standing in for a browser's call page: an aiortc RTCPeerConnection whose
offers, answers and candidates travel through the gateway's `signal` frames only."""
import asyncio

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

TIMEOUT_S = 15
# No ICE servers: on loopback host candidates suffice, and aiortc's default would reach
# out to a public STUN server.
LOOPBACK = RTCConfiguration(iceServers=[])


class Peer:
    def __init__(self, socket, call_id):
        self.socket = socket
        self.call_id = call_id
        self.pc = None
        self.channel = None
        self.inbox = asyncio.Queue()

    def _attach(self, channel):
        self.channel = channel
        channel.on("message", self.inbox.put_nowait)

    async def offer(self):
        """Start (or restart) the media path: a new connection and data channel, offered."""
        await self.close()
        self.pc = RTCPeerConnection(LOOPBACK)
        self._attach(self.pc.createDataChannel("chat"))
        opened = asyncio.get_running_loop().create_future()
        self.channel.on("open", lambda: opened.done() or opened.set_result(True))
        await self.pc.setLocalDescription(await self.pc.createOffer())  # gathers candidates
        await self.socket.request("signal", call_id=self.call_id, kind="offer", sdp=self.pc.localDescription.sdp)
        answer = await self.socket.expect("signal", call_id=self.call_id, kind="answer", timeout_s=TIMEOUT_S)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await asyncio.wait_for(opened, TIMEOUT_S)

    async def answer(self):
        """Take the other side's next offer and answer it."""
        offer = await self.socket.expect("signal", call_id=self.call_id, kind="offer", timeout_s=TIMEOUT_S)
        await self.close()
        self.pc = RTCPeerConnection(LOOPBACK)
        channel_ready = asyncio.get_running_loop().create_future()

        @self.pc.on("datachannel")
        def on_channel(channel):
            self._attach(channel)
            channel_ready.done() or channel_ready.set_result(True)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.socket.request("signal", call_id=self.call_id, kind="answer", sdp=self.pc.localDescription.sdp)
        await asyncio.wait_for(channel_ready, TIMEOUT_S)

    async def say(self, text):
        self.channel.send(text)

    async def heard(self):
        return await asyncio.wait_for(self.inbox.get(), TIMEOUT_S)

    async def close(self):
        if self.pc is not None:
            await self.pc.close()
            self.pc = None


async def connect(offerer, answerer):
    await asyncio.gather(offerer.offer(), answerer.answer())
